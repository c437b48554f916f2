package authlog

import (
	"context"

	"github.com/provtrail/provtrail/collectors"
)

var _ collectors.Checker = (*Collector)(nil)

// Check reports whether the configured log files can be read.
func (c *Collector) Check(context.Context) error { return collectors.CheckReadable(c.cfg.Paths...) }
