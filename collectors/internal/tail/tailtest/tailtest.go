// Package tailtest holds what the tests of file-following code share: a
// log writer that behaves like rsyslog's omfile across a rotation,
// rename rotation the way logrotate's create does it, recorders of what a
// follower delivers (lines, records, problems) that wait for it, and a
// follower run in the background.
package tailtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// Writer appends to a log file like rsyslog's omfile: it keeps its
// descriptor open across a rename until it is HUPed.
type Writer struct {
	t    testing.TB
	path string
	f    *os.File
}

// NewWriter opens path for appending (creating it) and closes it when the
// test ends.
func NewWriter(t testing.TB, path string) *Writer {
	w := &Writer{t: t, path: path}
	w.HUP()
	t.Cleanup(func() { w.f.Close() })
	return w
}

// HUP reopens the path, as rsyslog does on SIGHUP after a rotation.
func (w *Writer) HUP() {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
}

// Write appends s as it is.
func (w *Writer) Write(s string) {
	if _, err := io.WriteString(w.f, s); err != nil {
		w.t.Fatal(err)
	}
}

// Lines appends each line with its newline.
func (w *Writer) Lines(lines ...string) {
	for _, l := range lines {
		w.Write(l + "\n")
	}
}

// Rotate renames path to path.1 (shifting an existing path.1 to path.2)
// and creates a new empty path, as logrotate's default (create) does.
func Rotate(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path + ".1"); err == nil {
		if err := os.Rename(path+".1", path+".2"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// Log records what a follower delivers; it is safe for concurrent use.
// Describe, if set, renders the items in failure messages.
type Log[T any] struct {
	Describe func([]T) string

	mu    sync.Mutex
	items []T
}

// Add records items.
func (l *Log[T]) Add(items ...T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.items = append(l.items, items...)
}

// All returns what was recorded so far.
func (l *Log[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]T(nil), l.items...)
}

func (l *Log[T]) describe(items []T) string {
	if l.Describe != nil {
		return l.Describe(items)
	}
	return fmt.Sprint(items)
}

// WaitFor waits until n items were recorded, and fails after 10s.
func (l *Log[T]) WaitFor(t testing.TB, n int) []T {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if items := l.All(); len(items) >= n {
			return items
		}
		time.Sleep(10 * time.Millisecond)
	}
	items := l.All()
	t.Fatalf("got %d, want %d: %s", len(items), n, l.describe(items))
	return nil
}

// Quiet checks that no more than n items arrive for a while (longer than
// the poll and idle intervals of the tests).
func (l *Log[T]) Quiet(t testing.TB, n int) []T {
	t.Helper()
	time.Sleep(600 * time.Millisecond)
	items := l.All()
	if len(items) != n {
		t.Fatalf("got %d, want exactly %d: %s", len(items), n, l.describe(items))
	}
	return items
}

// Sink is a collectors.Emitter that records every record.
type Sink struct{ Log[collectors.Record] }

var _ collectors.Emitter = (*Sink)(nil)

// Emit records recs.
func (s *Sink) Emit(_ context.Context, recs ...collectors.Record) error {
	s.Add(recs...)
	return nil
}

// Problems records reported problems.
type Problems struct{ Log[collectors.Problem] }

var _ collectors.ProblemReporter = (*Problems)(nil)

// Report records p.
func (l *Problems) Report(p collectors.Problem) { l.Add(p) }

// Running is a follower running in the background.
type Running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned err
	err    error
}

// Start runs run in the background until Stop or the end of the test.
func Start(t testing.TB, run func(ctx context.Context) error) *Running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// Stop cancels the run and checks that it returns context.Canceled.
func (r *Running) Stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("run returned %v, want context.Canceled", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
