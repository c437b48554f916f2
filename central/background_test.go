package central

import (
	"log/slog"
	"os"
	"runtime"
	"syscall"
	"testing"
)

func TestRunInBackgroundLowersItsThread(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("per-thread priority is Linux only")
	}
	// getpriority(2) returns 20-nice for the calling thread.
	nice := func() int {
		p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
		if err != nil {
			t.Error(err)
		}
		return 20 - p
	}
	runtime.LockOSThread()
	before := nice()
	runtime.UnlockOSThread()
	got := make(chan int)
	runInBackground(slog.New(slog.DiscardHandler), "test", func() { got <- nice() })
	if n := <-got; n != min(before+backgroundNice, 19) {
		t.Fatalf("background stage runs at nice %d, want %d", n, min(before+backgroundNice, 19))
	}
}

func TestReserveIndexProcs(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set: the operator's value is kept")
	}
	defer runtime.SetDefaultGOMAXPROCS()
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	for range 3 {
		ReserveIndexProcs()
		if n := runtime.GOMAXPROCS(0); n != def+indexStages {
			t.Fatalf("GOMAXPROCS %d, want %d", n, def+indexStages)
		}
	}
}
