package central

import (
	"log/slog"
	"os"
	"runtime"
)

// The index stages are CPU-bound background work that must not delay
// acknowledgements: an ack waits for the log's and the store's fsyncs, and
// a goroutine returning from a system call queues for a P behind every
// runnable goroutine, so with the index stages holding both Ps of a
// 2-core machine, each fsync of the ack path cost up to a scheduling
// quantum (BenchmarkIngestSustained: the log phase averaged 72 ms at 50k
// events/s). As RocksDB does for compaction threads, each stage runs on
// an OS thread of its own with a lower CPU priority (nice), and the Go
// scheduler gets one more P per stage (ReserveIndexProcs), so the ack path
// keeps the Ps it had and the kernel gives the index the CPU time the ack
// path leaves.
// Under sustained overload the index falls behind, and ingest defers
// batches (Retry) once the backlog bound is reached.

// backgroundNice is how much higher the index stages' threads' nice value is
// than the process's.
const backgroundNice = 10

// indexStages is how many goroutines run as background stages.
const indexStages = 2

// ReserveIndexProcs gives the Go scheduler a P for each index stage on top
// of its default, unless the GOMAXPROCS environment variable sets it: a
// process that runs central calls it once at start, before New (it sets
// the process-wide GOMAXPROCS, which also stops the runtime from following
// later changes of the container's CPU limit).
func ReserveIndexProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + indexStages)
}

// runInBackground runs fn on a goroutine locked to an OS thread whose CPU
// priority is lowered. The thread is never unlocked: it exits with the
// goroutine, so no other goroutine ever runs at the lower priority.
func runInBackground(log *slog.Logger, name string, fn func()) {
	go func() {
		runtime.LockOSThread()
		if err := lowerThreadPriority(backgroundNice); err != nil {
			log.Warn("background stage runs at normal CPU priority", "stage", name, "err", err)
		}
		fn()
	}()
}
