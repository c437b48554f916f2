package accounts

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/provtrail/provtrail/collectors"
)

var _ collectors.Checker = (*Collector)(nil)

// Check reports whether each account database can be read: the shadow
// files need more than the adm group.
func (c *Collector) Check(context.Context) error {
	files := []string{"etc/passwd", "etc/shadow", "etc/group", "etc/gshadow"}
	if c.cfg.Sudoers {
		files = append(files, "etc/sudoers")
	}
	var errs []error
	for _, f := range files {
		if err := collectors.CheckReadable(filepath.Join(c.cfg.Root, f)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
