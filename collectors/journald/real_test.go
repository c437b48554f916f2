package journald

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/testenv"
)

type sink struct {
	mu     sync.Mutex
	recs   []collectors.Record
	cursor int
}

func (s *sink) Emit(_ context.Context, recs ...collectors.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

func summary(e event.Event) string {
	var u, g string
	if e.Target.User != nil {
		u = e.Target.User.Name
	}
	if e.Target.Group != nil {
		g = e.Target.Group.Name
	}
	return fmt.Sprintf("%s %s/%s", e.Action, u, g)
}

// expect waits until the records after the last expect are exactly want.
func (s *sink) expect(t *testing.T, want ...string) []collectors.Record {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.mu.Lock()
		recs := slices.Clone(s.recs[s.cursor:])
		s.mu.Unlock()
		var got []string
		for _, r := range recs {
			got = append(got, summary(r.Event))
		}
		slices.Sort(got)
		if len(got) >= len(want) {
			time.Sleep(300 * time.Millisecond)
			s.mu.Lock()
			extra := len(s.recs) - s.cursor - len(recs)
			s.cursor = len(s.recs)
			s.mu.Unlock()
			if !slices.Equal(got, want) || extra != 0 {
				t.Fatalf("events %q (+%d more), want %q", got, extra, want)
			}
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: events %q, want %q", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scratchRoot(t *testing.T) string {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	for rel, s := range map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"etc/shadow":  "root:*:19000:0:99999:7:::\n",
		"etc/group":   "root:x:0:\nsudo:x:27:\nusers:x:100:\n",
		"etc/gshadow": "root:*::\nsudo:*::\nusers:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func startRun(t *testing.T, c *Collector, start collectors.Position, out collectors.Emitter) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, start, out) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestRealJournal: a real journald (namespace instance), real shadow-utils
// tools logging to it through syslog(3), the collector reading through a
// real journalctl; then a restart from the last cursor sees only what
// happened while it was stopped; a refused cursor falls back to its time.
func TestRealJournal(t *testing.T) {
	for _, tool := range []string{"useradd", "usermod", "userdel", "groupadd", "gpasswd"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
				t.Fatalf("%s not found", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	j := testenv.StartJournald(t)
	root := scratchRoot(t)
	run := func(args ...string) {
		t.Helper()
		if out, err := j.RunChrooted(root, args...); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
	}
	probs := &collectors.ProblemCounter{}
	set := collectors.Settings{Type: Type, Name: "test", Hostname: "testhost", StateDir: t.TempDir(), Problems: probs}
	cfg := DefaultConfig()
	cfg.Namespace = j.Namespace
	cfg.StartAt = "beginning"
	cfg.BurstIdle = 100 * time.Millisecond
	c, err := New(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := &sink{}
	stop := startRun(t, c, nil, out)

	run("groupadd", "--root", root, "pt_jops")
	run("useradd", "--root", root, "-G", "sudo,pt_jops", "pt_j1")
	recs := out.expect(t, "group.create /pt_jops", "user.create pt_j1/", "privilege.grant pt_j1/sudo", "group.member.add pt_j1/pt_jops")
	for _, r := range recs {
		e := r.Event
		if err := event.Validate(&e); err != nil {
			t.Errorf("%s: %v", summary(e), err)
		}
		if e.Source.Collector != Type || e.Source.Cursor == "" || e.Origin.PID == 0 || len(r.Position) == 0 {
			t.Errorf("%s: source %+v origin %+v position %q", summary(e), e.Source, e.Origin, r.Position)
		}
	}
	run("usermod", "--root", root, "-s", "/bin/sh", "pt_j1")
	out.expect(t, "user.modify pt_j1/")
	stop()
	last := out.recs[len(out.recs)-1].Position

	run("gpasswd", "--root", root, "-d", "pt_j1", "sudo")
	run("userdel", "--root", root, "pt_j1")

	stop = startRun(t, c, last, out)
	out.expect(t, "privilege.revoke pt_j1/sudo", "user.delete pt_j1/", "group.member.remove pt_j1/pt_jops")
	stop()

	// A cursor journalctl refuses: reported, then read again from its time.
	before := probs.Count()
	bogus := collectors.Position("s=not-an-id;i=1;t=" + fmt.Sprintf("%x", time.Now().Add(-time.Hour).UnixMicro()))
	replay := &sink{}
	stop = startRun(t, c, bogus, replay)
	replay.expect(t, "group.create /pt_jops", "user.create pt_j1/", "privilege.grant pt_j1/sudo", "group.member.add pt_j1/pt_jops",
		"user.modify pt_j1/", "privilege.revoke pt_j1/sudo", "user.delete pt_j1/", "group.member.remove pt_j1/pt_jops")
	stop()
	if probs.Count() == before {
		t.Error("the refused cursor was not reported")
	}
	for i, r := range replay.recs {
		if r.Event.ID != out.recs[i].Event.ID {
			t.Errorf("re-read event %d has id %s (%s %s), first read %s (%s %s)", i, r.Event.ID, summary(r.Event), r.Event.Source.Cursor, out.recs[i].Event.ID, summary(out.recs[i].Event), out.recs[i].Event.Source.Cursor)
		}
	}

	if *update {
		b, err := exec.Command(testenv.JournalctlBin, "--namespace="+j.Namespace, "--output=json", "--all", "--no-pager", "--lines=all").Output()
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" && !strings.Contains(l, `"SYSLOG_IDENTIFIER":"systemd-journald"`) {
				keep = append(keep, l)
			}
		}
		if err := os.WriteFile("testdata/real-namespace.json", []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
