package collectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Checker is implemented by collectors that can tell, without emitting
// anything, whether their source is there and readable with the agent's
// rights: `provtrail agent --check` calls it.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckReadable opens and reads one byte of each file. Missing files are
// an error only when none of paths exists (a collector that follows
// /var/log/auth.log or /var/log/secure needs one of them); a file that
// exists but cannot be read is always an error, with how to fix it.
func CheckReadable(paths ...string) error {
	var missing, denied []string
	found := 0
	for _, p := range paths {
		f, err := os.Open(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, p)
			continue
		case errors.Is(err, fs.ErrPermission):
			denied = append(denied, p)
			continue
		case err != nil:
			return fmt.Errorf("open %s: %w", p, err)
		}
		_, err = f.Read(make([]byte, 1))
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", p, err)
		}
		found++
	}
	if len(denied) > 0 {
		return fmt.Errorf("permission denied reading %s (run as a user in the file's group, e.g. adm, or grant CAP_DAC_READ_SEARCH)", strings.Join(denied, ", "))
	}
	if found == 0 && len(missing) > 0 {
		return fmt.Errorf("none of %s exists yet (the collector waits for it)", strings.Join(missing, ", "))
	}
	return nil
}
