//go:build !linux

package central

import "errors"

// lowerThreadPriority is not supported: other systems' priorities apply
// to whole processes.
func lowerThreadPriority(int) error {
	return errors.New("per-thread priority is supported on Linux only")
}
