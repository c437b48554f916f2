package authlog

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/tail"
	"github.com/provtrail/provtrail/collectors/internal/tail/tailtest"
	"github.com/provtrail/provtrail/event"
)

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

// running is one collector Run in the background, and what it emitted.
type running struct {
	*tailtest.Running
	sink *tailtest.Sink
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
	r := &running{sink: &tailtest.Sink{}}
	r.sink.Describe = func(recs []collectors.Record) string { return fmt.Sprint(summary(recs)) }
	r.Running = tailtest.Start(t, func(ctx context.Context) error { return c.Run(ctx, start, r.sink) })
	return r
}

// syslogWriter writes auth lines like rsyslog's omfile.
type syslogWriter struct {
	*tailtest.Writer
	sec int
}

func newWriter(t *testing.T, path string) *syslogWriter {
	return &syslogWriter{Writer: tailtest.NewWriter(t, path)}
}

// change writes the lines of one userdel run deleting user, with a sudo
// line first when by is set.
func (w *syslogWriter) userdel(by, user string, pid int) {
	w.sec++
	ts := fmt.Sprintf("Nov 25 18:%02d:%02d", w.sec/60%60, w.sec%60)
	if by != "" {
		w.Write(fmt.Sprintf("%s vm sudo: %s : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/userdel %s\n", ts, by, user))
	}
	w.Write(fmt.Sprintf("%s vm sshd[77]: Disconnected from user deploy 203.0.113.5 port 52211\n", ts))
	w.Write(fmt.Sprintf("%s vm userdel[%d]: delete user '%s'\n", ts, pid, user))
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
	w.Write("Nov 25 18:10:00 vm userdel[101]: delete user 'u")
	r.sink.WaitFor(t, 1)
	r.sink.Quiet(t, 1) // the partial line waits for its newline
	w.Write("2'\n")
	recs := r.sink.WaitFor(t, 2)
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
	r.Stop(t)
}

func TestTailRenameRotationDrainsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("pt_admin", "a1", 200)
	r := startCollector(t, tailConfig(path), nil, nil)
	r.sink.WaitFor(t, 1)
	tailtest.Rotate(t, path)
	// rsyslog has not been HUPed yet: it still writes to auth.log.1.
	w.userdel("pt_admin", "a2", 201)
	time.Sleep(100 * time.Millisecond)
	w.userdel("", "a3", 202)
	w.HUP()
	w.userdel("pt_admin", "a4", 203)
	recs := r.sink.WaitFor(t, 4)
	r.sink.Quiet(t, 4)
	if got := users(recs); got != "a1,a2,a3,a4" {
		t.Errorf("users = %s", got)
	}
	for i, want := range []string{"pt_admin", "pt_admin", "", "pt_admin"} {
		if recs[i].Event.Actor.Name != want {
			t.Errorf("event %d actor = %q, want %q", i, recs[i].Event.Actor.Name, want)
		}
	}
	r.Stop(t)
}

func TestTailCopytruncate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("", "c1", 300)
	w.userdel("", "c2", 301)
	r := startCollector(t, tailConfig(path), nil, nil)
	r.sink.WaitFor(t, 2)
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
	recs := r.sink.WaitFor(t, 3)
	r.sink.Quiet(t, 3)
	if got := users(recs); got != "c1,c2,c3" {
		t.Errorf("users = %s", got)
	}
	r.Stop(t)
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
	recs := r.sink.WaitFor(t, 2)
	r.Stop(t)
	pos := recs[len(recs)-1].Position

	w.userdel("", "r3", 402) // written while the agent is down
	tailtest.Rotate(t, path)
	w.userdel("", "r4", 403) // before the HUP: still into auth.log.1
	w.HUP()
	w.userdel("", "r5", 404)
	if err := os.WriteFile(path+".2.gz", []byte("not read"), 0o640); err != nil {
		t.Fatal(err)
	}

	var problems problemLog
	r2 := startCollector(t, tailConfig(path), pos, &problems)
	recs = r2.sink.WaitFor(t, 3)
	r2.sink.Quiet(t, 3)
	if got := users(recs); got != "r3,r4,r5" {
		t.Errorf("after restart users = %s, want r3,r4,r5", got)
	}
	if ps := problems.all(); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
	r2.Stop(t)

	// And from the last position again: nothing is re-emitted.
	r3 := startCollector(t, tailConfig(path), recs[len(recs)-1].Position, nil)
	r3.sink.Quiet(t, 0)
	r3.Stop(t)
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
	all := r.sink.WaitFor(t, 6)
	r.sink.Quiet(t, 6)
	r.Stop(t)
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
		got := r.sink.WaitFor(t, len(rest))
		r.sink.Quiet(t, len(rest))
		for j := range rest {
			a, b := got[j].Event, rest[j].Event
			if a.ID != b.ID || mustJSON(a.Actor) != mustJSON(b.Actor) {
				t.Errorf("resume after %d: event %d = %s by %+v, want %s by %+v", i, j, a.Action, a.Actor, b.Action, b.Actor)
			}
		}
		r.Stop(t)
	}
}

func TestTailStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("", "old", 500)
	w.Write("Nov 25 18:00:00 vm userdel[501]: delete user 'cut") // cut mid-line
	cfg := tailConfig(path)
	cfg.StartAt = "end"
	var problems problemLog
	r := startCollector(t, cfg, nil, &problems)
	time.Sleep(200 * time.Millisecond)
	w.Write("'\n")
	w.userdel("", "new", 502)
	recs := r.sink.WaitFor(t, 1)
	r.sink.Quiet(t, 1)
	if users(recs) != "new" {
		t.Errorf("users = %s", users(recs))
	}
	if ps := problems.all(); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
	r.Stop(t)
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
	r.sink.WaitFor(t, 1)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("event took %v", d)
	}
	tailtest.Rotate(t, path)
	w.HUP()
	w.userdel("", "fast2", 701)
	r.sink.WaitFor(t, 2)
	r.Stop(t)
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
	r.sink.WaitFor(t, 1)
	before := cpuTime(t)
	const idle = 3 * time.Second
	time.Sleep(idle)
	used := cpuTime(t) - before
	t.Logf("idle CPU following 3 files: %v per second (%.3f%% of a core)", used/3, float64(used)/float64(idle)*100)
	if used > idle/20 {
		t.Errorf("idle collector used %v CPU in %v", used, idle)
	}
	r.Stop(t)
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
		other.Write("Nov 25 18:00:00 vm kernel: noise\n")
	}
	time.Sleep(200 * time.Millisecond)
	t.Logf("CPU for 2000 writes to a neighbour file: %v", cpuTime(t)-before)
	w.userdel("", "seen", 900)
	r.sink.WaitFor(t, 1)
	r.Stop(t)
}

func TestTailBadOrLostPosition(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.userdel("", "p1", 1000)

	var problems problemLog
	r := startCollector(t, tailConfig(path), collectors.Position("{not json"), &problems)
	recs := r.sink.WaitFor(t, 1)
	r.Stop(t)
	if ps := problems.all(); len(ps) != 1 || ps[0].Where != "position" {
		t.Errorf("problems = %v", ps)
	}

	// The file the position names was rotated twice (and compressed)
	// while the collector was down: say so, read the current file.
	pos := recs[0].Position
	tailtest.Rotate(t, path)
	tailtest.Rotate(t, path)
	w.HUP()
	w.userdel("", "p2", 1001)
	problems = problemLog{}
	r = startCollector(t, tailConfig(path), pos, &problems)
	recs = r.sink.WaitFor(t, 1)
	r.sink.Quiet(t, 1)
	r.Stop(t)
	if users(recs) != "p2" {
		t.Errorf("users = %s", users(recs))
	}
	if ps := problems.all(); len(ps) != 1 || !strings.Contains(ps[0].Reason, "rotated more than once") {
		t.Errorf("problems = %v", ps)
	}
}

// Positions authlog wrote before the tailer moved to collectors/internal/tail
// still decode, and encode back to the same bytes.
func TestPositionShapeKept(t *testing.T) {
	old := `{"v":1,"files":[{"path":"/var/log/auth.log","device":2049,"inode":9978609,"fingerprint":"9f86d0","fingerprint_len":1024,"offset":81234,"context_offset":80990,"skip":["4b1f"]},{"path":"/var/log/secure","offset":0,"context_offset":0}]}`
	m, err := tail.Decode[filePos](collectors.Position(old))
	if err != nil {
		t.Fatal(err)
	}
	a := m["/var/log/auth.log"]
	if a.Inode != 9978609 || a.Offset != 81234 || a.ContextOffset != 80990 || len(a.Skip) != 1 || a.Skip[0] != "4b1f" {
		t.Errorf("decoded %+v", a)
	}
	if got := string(tail.Encode([]filePos{a, m["/var/log/secure"]})); got != old {
		t.Errorf("re-encoded\n%s\nwant\n%s", got, old)
	}
}

func TestPositionFastEncodingMatchesJSON(t *testing.T) {
	for _, fp := range []filePos{
		{FilePos: tail.FilePos{Path: "/var/log/auth.log", Device: 2049, Inode: 9978609, Fingerprint: "9f86d0", FingerprintLen: 1024, Offset: 81234, ContextOffset: 80990}, Skip: []string{"4b1f", "a\"b"}},
		{FilePos: tail.FilePos{Path: "/var/log/secure"}},
	} {
		fast := tail.Encode([]filePos{fp})
		slow, err := json.Marshal(tail.Position[filePos]{Version: tail.PositionVersion, Files: []filePos{fp}})
		if err != nil {
			t.Fatal(err)
		}
		if string(fast) != string(slow) {
			t.Errorf("fast encoding\n%s\nencoding/json\n%s", fast, slow)
		}
	}
}
