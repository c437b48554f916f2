package auditd

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/tail/tailtest"
	"github.com/provtrail/provtrail/internal/testenv"
)

// followConfig is the collector's config for path with the short waits
// of the tests.
func followConfig(path string) *Config {
	cfg := DefaultConfig()
	cfg.Path = path
	cfg.PollInterval = 20 * time.Millisecond
	cfg.RotateWait = 300 * time.Millisecond
	return cfg
}

// startCollector runs the collector the factory makes (with the shared
// tailer) from start, recording what it emits.
func startCollector(t *testing.T, cfg *Config, start collectors.Position, problems collectors.ProblemReporter) (*tailtest.Running, *tailtest.Sink) {
	t.Helper()
	c, err := NewFactory().New(collectors.Settings{Type: Type, Name: "test", Hostname: "vm", Problems: problems}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sink := &tailtest.Sink{}
	sink.Describe = func(recs []collectors.Record) string { return strings.Join(ids(recs), ",") }
	return tailtest.Start(t, func(ctx context.Context) error { return c.Run(ctx, start, sink) }), sink
}

func ids(recs []collectors.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Event.Action)+"#"+r.Event.Source.EventID)
	}
	return out
}

// The collector follows audit.log through auditd's own rotation
// (audit.log.1 -> .2, audit.log -> .1, a new audit.log) while running and
// while stopped, and emits every event of the file exactly once: the same
// events, in the same order, as the parser reading the records at once.
func TestCollectorFollowsAuditdRotation(t *testing.T) {
	src := "testdata/research-debian12.log"
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := parseFile(t, src)
	if len(want) < 12 {
		t.Fatalf("%s has %d events", src, len(want))
	}
	// Cut the records into four parts at event boundaries.
	var cuts []int64
	for _, i := range []int{3, 7, 11} {
		var fp filePosition
		if err := json.Unmarshal(want[i].Position, &fp); err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, fp.Offset)
	}
	part := func(i int) string {
		from, to := int64(0), int64(len(data))
		if i > 0 {
			from = cuts[i-1]
		}
		if i < len(cuts) {
			to = cuts[i]
		}
		return string(data[from:to])
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	w := tailtest.NewWriter(t, path)
	// auditd's rotation: close, shift the numbered logs, rename, reopen.
	rotate := func() {
		tailtest.Rotate(t, path)
		w.HUP()
	}
	var problems tailtest.Problems
	w.Write(part(0))
	r, sink := startCollector(t, followConfig(path), nil, &problems)
	sink.WaitFor(t, 4)
	rotate()
	w.Write(part(1))
	got := sink.WaitFor(t, 8)
	sink.Quiet(t, 8)
	r.Stop(t)

	// Stopped: the rest of part 2 is written, auditd rotates, part 3
	// goes to the new file.
	w.Write(part(2))
	rotate()
	w.Write(part(3))
	r, sink = startCollector(t, followConfig(path), got[len(got)-1].Position, &problems)
	rest := sink.WaitFor(t, len(want)-8)
	sink.Quiet(t, len(want)-8)
	r.Stop(t)
	got = append(got, rest...)
	if g, wn := strings.Join(ids(got), ","), strings.Join(ids(want), ","); g != wn {
		t.Errorf("events across rotations and a restart:\n%s\nwant\n%s", g, wn)
	}
	// Where each event was read: parts 0 and 1 live from audit.log (two
	// files), part 2 after the restart from audit.log.1 (the second file,
	// after part 1), part 3 from the third file.
	base := []int64{0, cuts[0], cuts[0], cuts[2]}
	for i := range min(len(got), len(want)) {
		ge, we := got[i].Event, want[i].Event
		if ge.ID != we.ID {
			t.Errorf("event %d: id %s, want %s", i, ge.ID, we.ID)
		}
		part := min(i/4, 3)
		wantFile := path
		if part == 2 {
			wantFile = path + ".1"
		}
		if ge.Source.File != wantFile || ge.Source.Offset == nil || we.Source.Offset == nil || *ge.Source.Offset != *we.Source.Offset-base[part] {
			t.Errorf("event %d: source %s offset %s, want %s offset %d", i, ge.Source.File, mustJSON(ge.Source.Offset), wantFile, *we.Source.Offset-base[part])
		}
	}
	if ps := problems.All(); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
	if _, err := os.Stat(path + ".2"); err != nil {
		t.Errorf("rotation: %v", err)
	}
}

var auditdPid = regexp.MustCompile(`(?m)^pid (\d+)$`)

// rotateAuditd makes the running auditd rotate its log (SIGUSR1) and waits
// for the new audit.log.
func rotateAuditd(t *testing.T, log string) {
	t.Helper()
	out, err := exec.Command(testenv.AuditctlBin, "-s").CombinedOutput()
	if err != nil {
		t.Fatalf("auditctl -s: %v\n%s", err, out)
	}
	m := auditdPid.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no auditd pid in %s", out)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	before, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if now, err := os.Stat(log); err == nil && !os.SameFile(before, now) {
			if old, err := os.Stat(log + ".1"); err == nil && os.SameFile(before, old) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("auditd did not rotate its log")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A real auditd writes the records of real shadow-utils runs; the
// collector follows its audit.log while auditd rotates it (SIGUSR1, as
// max_log_file_action = ROTATE does), is stopped, auditd rotates again and
// more changes are made, and a restart from the last record's Position
// emits the rest: each of our changes once, and no event of the host
// twice.
func TestCollectorRealAuditdRotation(t *testing.T) {
	sh := newShadowRoot(t, "useradd", "usermod", "userdel", "groupadd", "groupdel")
	a := testenv.StartAuditd(t)
	ours := sh.ours
	run := func(args ...string) {
		t.Helper()
		sh.run(append([]string{args[0], "--root", sh.root}, args[1:]...)...)
	}
	mine := func(recs []collectors.Record) []string {
		var out []string
		for _, r := range recs {
			if ours[r.Event.Origin.PID] {
				out = append(out, string(r.Event.Action))
			}
		}
		return out
	}
	waitMine := func(sink *tailtest.Sink, n int) []collectors.Record {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); len(mine(sink.All())) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("got %v, want %d of our events", mine(sink.All()), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return sink.All()
	}

	var problems tailtest.Problems
	r, sink := startCollector(t, followConfig(a.Log), nil, &problems)
	run("groupadd", "-g", "2100", "pt_rot")
	run("useradd", "-u", "1600", "pt_rot1")
	waitMine(sink, 2)
	rotateAuditd(t, a.Log)
	run("usermod", "-s", "/bin/sh", "pt_rot1")
	a.Mark("provtrail rotation step 1")
	got := waitMine(sink, 3)
	r.Stop(t)

	// Stopped: a change, auditd rotates, more changes.
	run("usermod", "-c", "rotated", "pt_rot1")
	a.Mark("provtrail rotation step 2")
	rotateAuditd(t, a.Log)
	run("userdel", "pt_rot1")
	run("groupdel", "pt_rot")
	a.Mark("provtrail rotation step 3")
	r, sink = startCollector(t, followConfig(a.Log), got[len(got)-1].Position, &problems)
	waitMine(sink, 3)
	time.Sleep(1500 * time.Millisecond) // idle flush and more: nothing of ours again
	rest := sink.All()
	r.Stop(t)

	all := append(got, rest...)
	wantMine := []string{"group.create", "user.create", "user.modify", "user.modify", "user.delete", "group.delete"}
	if g := mine(all); !slices.Equal(g, wantMine) {
		t.Errorf("our events: %v, want %v", g, wantMine)
	}
	seen := map[string]int{}
	for _, rec := range all {
		seen[rec.Event.ID]++
		if seen[rec.Event.ID] == 2 {
			t.Errorf("event emitted twice: %s %s (pid %d)", rec.Event.Action, rec.Event.Source.EventID, rec.Event.Origin.PID)
		}
	}
	if ps := problems.All(); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
