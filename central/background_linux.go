package central

import (
	"fmt"
	"syscall"
)

// lowerThreadPriority adds by to the calling thread's nice value (on
// Linux, PRIO_PROCESS with a thread id applies to that thread only).
func lowerThreadPriority(by int) error {
	tid := syscall.Gettid()
	// The system call returns 20-nice.
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	if err != nil {
		return fmt.Errorf("getpriority: %w", err)
	}
	nice := min(20-p+by, 19)
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
		return fmt.Errorf("setpriority %d: %w", nice, err)
	}
	return nil
}
