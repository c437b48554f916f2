package auditd

import (
	"context"

	"github.com/provtrail/provtrail/collectors"
)

var _ collectors.Checker = (*Collector)(nil)

// Check reports whether audit.log can be read.
func (c *Collector) Check(context.Context) error { return collectors.CheckReadable(c.cfg.Path) }
