package alerts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileState keeps rule state in one JSON file, replaced atomically (write,
// fsync, rename, fsync directory) so a crash leaves the old or the new
// state, never a torn one.
type FileState struct {
	Path string
}

// LoadAlertState returns the saved state, or nil when there is none yet.
func (f FileState) LoadAlertState(context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read alert state: %w", err)
	}
	return b, nil
}

// SaveAlertState replaces the saved state.
func (f FileState) SaveAlertState(_ context.Context, state []byte) error {
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, ".alert-state-*")
	if err != nil {
		return fmt.Errorf("create alert state in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(state); err != nil {
		tmp.Close()
		return fmt.Errorf("write alert state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync alert state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close alert state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("replace alert state %s: %w", f.Path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
