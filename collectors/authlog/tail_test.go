package authlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// sink records what a collector emits.
type sink struct {
	mu   sync.Mutex
	recs []collectors.Record
}

func (s *sink) Emit(_ context.Context, recs ...collectors.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

func (s *sink) snapshot() []collectors.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]collectors.Record(nil), s.recs...)
}

// waitFor waits until the sink holds n records, and fails on timeout.
func (s *sink) waitFor(t *testing.T, n int) []collectors.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if recs := s.snapshot(); len(recs) >= n {
			return recs
		}
		time.Sleep(10 * time.Millisecond)
	}
	recs := s.snapshot()
	t.Fatalf("got %d records, want %d: %v", len(recs), n, summary(recs))
	return nil
}

// quiet checks that nothing more than n records arrives for a while.
func (s *sink) quiet(t *testing.T, n int) {
	t.Helper()
	time.Sleep(600 * time.Millisecond)
	if recs := s.snapshot(); len(recs) != n {
		t.Fatalf("got %d records, want exactly %d: %v", len(recs), n, summary(recs))
	}
}

func summary(recs []collectors.Record) []string {
	var out []string
	for _, r := range recs {
		e := r.Event
		s := string(e.Action)
		if e.Target.User != nil {
			s += " " + e.Target.User.Name
		}
		if e.Target.Group != nil {
			s += " @" + e.Target.Group.Name
		}
		if e.Actor.Name != "" {
			s += " by " + e.Actor.Name
		}
		out = append(out, s)
	}
	return out
}

// running is one collector Run in the background.
type running struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned err
	err    error
	sink   *sink
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if !errors.Is(r.err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func tailConfig(paths ...string) *Config {
	cfg := testConfig()
	cfg.Paths = paths
	cfg.PollInterval = 20 * time.Millisecond
	cfg.RotateWait = 300 * time.Millisecond
	cfg.FlushAfter = 100 * time.Millisecond
	return cfg
}

func startCollector(t *testing.T, cfg *Config, start collectors.Position, problems collectors.ProblemReporter) *running {
	t.Helper()
	c, err := New(collectors.Settings{Type: Type, Name: "system", Hostname: "testhost", Problems: problems}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{}), sink: &sink{}}
	go func() {
		r.err = c.Run(ctx, start, r.sink)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// syslogWriter writes like rsyslog's omfile: it keeps its descriptor open
// across a rename until it is HUPed, and appends.
type syslogWriter struct {
	t    *testing.T
	path string
	f    *os.File
	sec  int
}

func newWriter(t *testing.T, path string) *syslogWriter {
	w := &syslogWriter{t: t, path: path}
	w.hup()
	t.Cleanup(func() { w.f.Close() })
	return w
}

func (w *syslogWriter) hup() {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		w.t.Fatal(err)
	}
	w.f = f
}

// write appends raw text.
func (w *syslogWriter) write(s string) {
	if _, err := io.WriteString(w.f, s); err != nil {
		w.t.Fatal(err)
	}
}

// change writes the lines of one userdel run deleting user, with a sudo
// line first when by is set.
func (w *syslogWriter) userdel(by, user string, pid int) {
	w.sec++
	ts := fmt.Sprintf("Nov 25 18:%02d:%02d", w.sec/60%60, w.sec%60)
	if by != "" {
		w.write(fmt.Sprintf("%s vm sudo: %s : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/userdel %s\n", ts, by, user))
	}
	w.write(fmt.Sprintf("%s vm sshd[77]: Disconnected from user deploy 203.0.113.5 port 52211\n", ts))
	w.write(fmt.Sprintf("%s vm userdel[%d]: delete user '%s'\n", ts, pid, user))
}

func users(recs []collectors.Record) string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event.Target.User.Name)
	}
	return strings.Join(out, ",")
}

func TestTailPartialLineAndLateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	r := startCollector(t, tailConfig(path), nil, nil)
	time.Sleep(100 * time.Millisecond) // the file does not exist yet
	w := newWriter(t, path)
	w.userdel("", "u1", 100)
	w.write("Nov 25 18:10:00 vm userdel[101]: delete user 'u")
	recs := r.sink.waitFor(t, 1)
	r.sink.quiet(t, 1) // the partial line waits for its newline
	w.write("2'\n")
	recs = r.sink.waitFor(t, 2)
	if got := users(recs); got != "u1,u2" {
		t.Errorf("users = %s", got)
	}
	for _, rec := range recs {
		if err := event.Validate(&rec.Event); err != nil {
			t.Error(err)
		}
		if rec.Event.Source.File != path || rec.Event.Source.Instance != "system" {
			t.Errorf("source = %+v", rec.Event.Source)
		}
	}
	r.stop(t)
}

// rotate renames path to path.1 (shifting older ones) and creates a new
// empty path, as logrotate's default (create) does.
func rotate(t *testing.T, path string) {
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

func TestTailRenameRotationDrainsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("pt_admin", "a1", 200)
	r := startCollector(t, tailConfig(path), nil, nil)
	r.sink.waitFor(t, 1)
	rotate(t, path)
	// rsyslog has not been HUPed yet: it still writes to auth.log.1.
	w.userdel("pt_admin", "a2", 201)
	time.Sleep(100 * time.Millisecond)
	w.userdel("", "a3", 202)
	w.hup()
	w.userdel("pt_admin", "a4", 203)
	recs := r.sink.waitFor(t, 4)
	r.sink.quiet(t, 4)
	if got := users(recs); got != "a1,a2,a3,a4" {
		t.Errorf("users = %s", got)
	}
	for i, want := range []string{"pt_admin", "pt_admin", "", "pt_admin"} {
		if recs[i].Event.Actor.Name != want {
			t.Errorf("event %d actor = %q, want %q", i, recs[i].Event.Actor.Name, want)
		}
	}
	r.stop(t)
}

func TestTailCopytruncate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("", "c1", 300)
	w.userdel("", "c2", 301)
	r := startCollector(t, tailConfig(path), nil, nil)
	r.sink.waitFor(t, 2)
	// logrotate copytruncate: copy, then truncate in place (same inode).
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".1", data, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	w.userdel("", "c3", 302) // O_APPEND: lands at offset 0
	recs := r.sink.waitFor(t, 3)
	r.sink.quiet(t, 3)
	if got := users(recs); got != "c1,c2,c3" {
		t.Errorf("users = %s", got)
	}
	r.stop(t)
}

// A restart resumes after the last record, in auth.log.1 when the file was
// rotated while the collector was down, then reads the new file.
func TestTailRestartResumesInRotatedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("", "r1", 400)
	w.userdel("", "r2", 401)
	r := startCollector(t, tailConfig(path), nil, nil)
	recs := r.sink.waitFor(t, 2)
	r.stop(t)
	pos := recs[len(recs)-1].Position

	w.userdel("", "r3", 402) // written while the agent is down
	rotate(t, path)
	w.userdel("", "r4", 403) // before the HUP: still into auth.log.1
	w.hup()
	w.userdel("", "r5", 404)
	if err := os.WriteFile(path+".2.gz", []byte("not read"), 0o640); err != nil {
		t.Fatal(err)
	}

	var problems problemLog
	r2 := startCollector(t, tailConfig(path), pos, &problems)
	recs = r2.sink.waitFor(t, 3)
	r2.sink.quiet(t, 3)
	if got := users(recs); got != "r3,r4,r5" {
		t.Errorf("after restart users = %s, want r3,r4,r5", got)
	}
	if ps := problems.all(); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
	r2.stop(t)

	// And from the last position again: nothing is re-emitted.
	r3 := startCollector(t, tailConfig(path), recs[len(recs)-1].Position, nil)
	r3.sink.quiet(t, 0)
	r3.stop(t)
}

// Every record's position resumes exactly after it, also between events
// whose twin lines interleave (usermod -G replacing groups), and the sudo
// line before the resume point still names the actor.
func TestTailResumeFromEveryRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	lines := `Nov 25 17:37:25 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/usermod -G pt_dev pt_bob
Nov 25 17:37:25 vm usermod[20353]: delete 'pt_bob' from group 'sudo'
Nov 25 17:37:25 vm usermod[20353]: delete 'pt_bob' from group 'pt_ops'
Nov 25 17:37:25 vm usermod[20353]: add 'pt_bob' to group 'pt_dev'
Nov 25 17:37:25 vm usermod[20353]: delete 'pt_bob' from shadow group 'sudo'
Nov 25 17:37:25 vm usermod[20353]: delete 'pt_bob' from shadow group 'pt_ops'
Nov 25 17:37:25 vm usermod[20353]: add 'pt_bob' to shadow group 'pt_dev'
Nov 25 17:37:26 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd -m pt_zed
Nov 25 17:37:26 vm useradd[20360]: new group: name=pt_zed, GID=7001
Nov 25 17:37:26 vm useradd[20360]: new user: name=pt_zed, UID=7001, GID=7001, home=/home/pt_zed, shell=/bin/sh, from=/dev/pts/1
Nov 25 17:37:27 vm gpasswd[20370]: user pt_zed added by root to group pt_dev
`
	if err := os.WriteFile(path, []byte(lines), 0o640); err != nil {
		t.Fatal(err)
	}
	r := startCollector(t, tailConfig(path), nil, nil)
	all := r.sink.waitFor(t, 6)
	r.sink.quiet(t, 6)
	r.stop(t)
	want := []string{"privilege.revoke", "group.member.remove", "group.member.add", "group.create", "user.create", "group.member.add"}
	for i, rec := range all {
		if string(rec.Event.Action) != want[i] {
			t.Errorf("event %d = %s, want %s", i, rec.Event.Action, want[i])
		}
		if i < 5 && rec.Event.Actor.Name != "pt_admin" {
			t.Errorf("event %d actor = %+v", i, rec.Event.Actor)
		}
		if n := strings.Count(rec.Event.Raw, "\n"); i < 3 && n != 2 {
			t.Errorf("event %d has %d raw lines, want sudo + 2 twins", i, n+1)
		}
	}
	for i := range all {
		r := startCollector(t, tailConfig(path), all[i].Position, nil)
		rest := all[i+1:]
		got := r.sink.waitFor(t, len(rest))
		r.sink.quiet(t, len(rest))
		for j := range rest {
			a, b := got[j].Event, rest[j].Event
			if a.ID != b.ID || mustJSON(a.Actor) != mustJSON(b.Actor) {
				t.Errorf("resume after %d: event %d = %s by %+v, want %s by %+v", i, j, a.Action, a.Actor, b.Action, b.Actor)
			}
		}
		r.stop(t)
	}
}

func TestTailStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("", "old", 500)
	w.write("Nov 25 18:00:00 vm userdel[501]: delete user 'cut") // cut mid-line
	cfg := tailConfig(path)
	cfg.StartAt = "end"
	var problems problemLog
	r := startCollector(t, cfg, nil, &problems)
	time.Sleep(200 * time.Millisecond)
	w.write("'\n")
	w.userdel("", "new", 502)
	recs := r.sink.waitFor(t, 1)
	r.sink.quiet(t, 1)
	if users(recs) != "new" {
		t.Errorf("users = %s", users(recs))
	}
	if ps := problems.all(); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
	r.stop(t)
}

// The real logrotate, with Debian's rsyslog stanza (rename + create,
// compress, delaycompress), rotating twice while lines keep coming.
func TestTailRealLogrotate(t *testing.T) {
	bin, err := exec.LookPath("logrotate")
	if err != nil {
		if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
			t.Fatal("logrotate not installed (apt-get install logrotate)")
		}
		t.Skip("logrotate not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	conf := filepath.Join(dir, "logrotate.conf")
	if err := os.WriteFile(conf, []byte(path+` {
	rotate 4
	weekly
	missingok
	notifempty
	create 0640
	compress
	delaycompress
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	logrotate := func() {
		out, err := exec.Command(bin, "-f", "-s", filepath.Join(dir, "state"), conf).CombinedOutput()
		if err != nil {
			t.Fatalf("logrotate: %v\n%s", err, out)
		}
	}
	w := newWriter(t, path)
	r := startCollector(t, tailConfig(path), nil, nil)
	var want []string
	n := 0
	next := func(by string) {
		n++
		u := fmt.Sprintf("lr%d", n)
		w.userdel(by, u, 600+n)
		want = append(want, u)
	}
	next("pt_admin")
	next("")
	r.sink.waitFor(t, 2)
	logrotate()
	next("pt_admin") // into auth.log.1 until the HUP
	w.hup()
	next("")
	r.sink.waitFor(t, 4)
	time.Sleep(400 * time.Millisecond)
	logrotate() // auth.log.1 -> auth.log.2.gz, auth.log -> auth.log.1
	next("pt_admin")
	w.hup()
	next("pt_admin")
	recs := r.sink.waitFor(t, len(want))
	r.sink.quiet(t, len(want))
	if got := users(recs); got != strings.Join(want, ",") {
		t.Errorf("users = %s, want %s", got, strings.Join(want, ","))
	}
	if _, err := os.Stat(path + ".2.gz"); err != nil {
		t.Errorf("logrotate did not compress: %v", err)
	}
	r.stop(t)

	// Restart from the last record: nothing again, and new lines arrive.
	r2 := startCollector(t, tailConfig(path), recs[len(recs)-1].Position, nil)
	next("pt_admin")
	got := r2.sink.waitFor(t, 1)
	r2.sink.quiet(t, 1)
	if got[0].Event.Target.User.Name != want[len(want)-1] || got[0].Event.Actor.Name != "pt_admin" {
		t.Errorf("after restart: %v", summary(got))
	}
	r2.stop(t)
}

// fsnotify wakes the collector and its own timer flushes held-back events:
// with a one-hour poll, a change still arrives at once.
func TestTailWakesWithoutPolling(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	cfg := tailConfig(path)
	cfg.PollInterval = time.Hour
	r := startCollector(t, cfg, nil, nil)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	w.userdel("", "fast", 700)
	r.sink.waitFor(t, 1)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("event took %v", d)
	}
	rotate(t, path)
	w.hup()
	w.userdel("", "fast2", 701)
	r.sink.waitFor(t, 2)
	r.stop(t)
}

// The idle cost of following files (fsnotify plus the poll), for the
// record: a few stat calls per poll_interval.
func TestTailIdleCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("measures for 3s")
	}
	dir := t.TempDir()
	paths := []string{filepath.Join(dir, "auth.log"), filepath.Join(dir, "secure"), filepath.Join(dir, "missing.log")}
	w := newWriter(t, paths[0])
	w.userdel("", "idle", 800)
	if err := os.WriteFile(paths[1], nil, 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := tailConfig(paths...)
	cfg.PollInterval = DefaultPollInterval
	r := startCollector(t, cfg, nil, nil)
	r.sink.waitFor(t, 1)
	before := cpuTime(t)
	const idle = 3 * time.Second
	time.Sleep(idle)
	used := cpuTime(t) - before
	t.Logf("idle CPU following 3 files: %v per second (%.3f%% of a core)", used/3, float64(used)/float64(idle)*100)
	if used > idle/20 {
		t.Errorf("idle collector used %v CPU in %v", used, idle)
	}
	r.stop(t)
}

// A noisy neighbour file in the same directory (syslog) wakes nothing and
// does not get in the way of our own lines.
func TestTailNoisyNeighbour(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	cfg := tailConfig(path)
	cfg.PollInterval = time.Hour
	r := startCollector(t, cfg, nil, nil)
	time.Sleep(100 * time.Millisecond)
	other := newWriter(t, filepath.Join(dir, "syslog"))
	before := cpuTime(t)
	for i := 0; i < 2000; i++ {
		other.write("Nov 25 18:00:00 vm kernel: noise\n")
	}
	time.Sleep(200 * time.Millisecond)
	t.Logf("CPU for 2000 writes to a neighbour file: %v", cpuTime(t)-before)
	w.userdel("", "seen", 900)
	r.sink.waitFor(t, 1)
	r.stop(t)
}

func TestTailBadOrLostPosition(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("", "p1", 1000)

	var problems problemLog
	r := startCollector(t, tailConfig(path), collectors.Position("{not json"), &problems)
	recs := r.sink.waitFor(t, 1)
	r.stop(t)
	if ps := problems.all(); len(ps) != 1 || ps[0].Where != "position" {
		t.Errorf("problems = %v", ps)
	}

	// The file the position names was rotated twice (and compressed)
	// while the collector was down: say so, read the current file.
	pos := recs[0].Position
	rotate(t, path)
	rotate(t, path)
	w.hup()
	w.userdel("", "p2", 1001)
	problems = problemLog{}
	r = startCollector(t, tailConfig(path), pos, &problems)
	recs = r.sink.waitFor(t, 1)
	r.sink.quiet(t, 1)
	r.stop(t)
	if users(recs) != "p2" {
		t.Errorf("users = %s", users(recs))
	}
	if ps := problems.all(); len(ps) != 1 || !strings.Contains(ps[0].Reason, "rotated more than once") {
		t.Errorf("problems = %v", ps)
	}
}
