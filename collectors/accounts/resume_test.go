package accounts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// TestResumeInsideDiff stops after the first record of a multi-event diff
// and resumes from that record's position: the rest is emitted, the first
// is not emitted again.
func TestResumeInsideDiff(t *testing.T) {
	root, state := t.TempDir(), t.TempDir()
	seedRoot(t, root)
	cfg := DefaultConfig()
	cfg.Root = root
	cfg.PollInterval = time.Second
	cfg.Debounce = 50 * time.Millisecond
	set := collectors.Settings{Type: Type, Name: "r", Hostname: "h", StateDir: state}

	// Baseline.
	base := newSink()
	c := startCollector(t, set, cfg, nil, base)
	time.Sleep(200 * time.Millisecond)
	c.stop(t)
	if n := len(base.all()); n != 0 {
		t.Fatalf("baseline emitted %d events", n)
	}

	// Three changes made while stopped.
	appendTo(t, filepath.Join(root, "etc/group"), "g1:x:2001:\ng2:x:2002:\ng3:x:2003:\n")

	// An emitter that takes one record and then fails like a shutdown.
	var got []collectors.Record
	stopAfterOne := collectors.EmitFunc(func(ctx context.Context, recs ...collectors.Record) error {
		got = append(got, recs[0])
		return errors.New("agent shutting down")
	})
	err := New(set, cfg).Run(context.Background(), nil, stopAfterOne)
	if err == nil || len(got) != 1 {
		t.Fatalf("Run = %v with %d records", err, len(got))
	}
	first := got[0]

	rest := newSink()
	c = startCollector(t, set, cfg, first.Position, rest)
	evs := rest.expect(t, 200*time.Millisecond, "group.create /g2", "group.create /g3")
	c.stop(t)
	if summary(first.Event) != "group.create /g1" {
		t.Errorf("first = %s", summary(first.Event))
	}
	for _, e := range evs {
		if e.ID == first.Event.ID {
			t.Error("resumed run re-emitted the committed event")
		}
	}

	// A garbage position is a reported problem, not a failure.
	probs := &collectors.ProblemCounter{}
	set.Problems = probs
	again := newSink()
	c = startCollector(t, set, cfg, collectors.Position("not json"), again)
	again.expect(t, 200*time.Millisecond, "group.create /g1", "group.create /g2", "group.create /g3")
	c.stop(t)
	if probs.Count() != 1 {
		t.Errorf("problems = %d, want 1", probs.Count())
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
