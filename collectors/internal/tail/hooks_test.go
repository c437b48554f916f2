package tail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/tail/tailtest"
)

// hookLog runs one File through Run and records what its hooks see.
type hookLog struct {
	mu    sync.Mutex
	calls []string
	last  FilePos
}

func (h *hookLog) add(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, fmt.Sprintf(format, args...))
}

func (h *hookLog) snapshot() (string, FilePos) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.calls, " "), h.last
}

// wait waits until the calls end with suffix.
func (h *hookLog) wait(t *testing.T, suffix string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if calls, _ := h.snapshot(); strings.HasSuffix(calls, suffix) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	calls, _ := h.snapshot()
	t.Fatalf("calls %q do not end with %q", calls, suffix)
}

func runHooks(t *testing.T, path string, saved map[string]FilePos, contextBack int64) (*tailtest.Running, *hookLog) {
	t.Helper()
	tl, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := &hookLog{}
	f := NewFile(path, Hooks{
		Open: func(o Opening) {
			h.add("open(%s from=%d done=%d resumed=%t truncated=%t)", filepath.Base(o.Name), o.From, o.Done, o.Resumed, o.Truncated)
		},
		Line: func(b []byte, off int64) error { h.add("%s@%d", b, off); return nil },
		Context: func(off int64) int64 {
			return max(off-contextBack, 0)
		},
		Checkpoint: func(p FilePos) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.last = p
		},
	})
	return tailtest.Start(t, func(ctx context.Context) error { return tl.Run(ctx, saved, saved == nil, f) }), h
}

// The hooks see every file change: the first open, a copytruncate, a
// rename rotation, and a restart in the .1 that re-reads context before
// the saved offset (handed over, with Done saying it was handled).
func TestHooks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("a1", "a2")
	r, h := runHooks(t, path, nil, 3)
	h.wait(t, "open(app.log from=0 done=0 resumed=false truncated=false) a1@0 a2@3")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	w.Lines("b1")
	h.wait(t, "a2@3 open(app.log from=0 done=0 resumed=false truncated=true) b1@0")
	w.Lines("b2")
	tailtest.Rotate(t, path)
	w.HUP()
	w.Lines("c1")
	h.wait(t, "b1@0 b2@3 open(app.log from=0 done=0 resumed=false truncated=false) c1@0")
	w.Lines("c2", "c3")
	h.wait(t, "c1@0 c2@3 c3@6")
	time.Sleep(100 * time.Millisecond) // a few polls: the checkpoint after c3
	r.Stop(t)
	_, last := h.snapshot()
	if last.Offset != 9 || last.ContextOffset != 6 {
		t.Fatalf("checkpoint %+v", last)
	}

	tailtest.Rotate(t, path)
	w.HUP()
	w.Lines("d1")
	r, h = runHooks(t, path, map[string]FilePos{path: last}, 3)
	h.wait(t, "open(app.log.1 from=6 done=9 resumed=true truncated=false) c3@6 open(app.log from=0 done=0 resumed=false truncated=false) d1@0")
	r.Stop(t)
}
