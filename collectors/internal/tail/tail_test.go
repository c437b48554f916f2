package tail

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/tail/tailtest"
)

// line is one line Follow handed over, with the Position after it.
type line struct {
	text string
	next collectors.Position
}

// follower is one Follow call in the background, and what it got.
type follower struct {
	*tailtest.Running
	lines tailtest.Log[line]
	idles atomic.Int64
}

func texts(ls []line) string {
	var out []string
	for _, l := range ls {
		out = append(out, l.text)
	}
	return strings.Join(out, ",")
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.PollInterval = 20 * time.Millisecond
	cfg.RotateWait = 300 * time.Millisecond
	cfg.IdleAfter = 100 * time.Millisecond
	return cfg
}

func startFollow(t *testing.T, cfg Config, path string, start collectors.Position) *follower {
	t.Helper()
	tl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &follower{}
	f.lines.Describe = texts
	f.Running = tailtest.Start(t, func(ctx context.Context) error {
		return tl.Follow(ctx, path, start, func(b []byte, next collectors.Position) error {
			f.lines.Add(line{string(b), next})
			return nil
		}, func() error {
			f.idles.Add(1)
			return nil
		})
	})
	return f
}

func TestPartialLineAndLateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	f := startFollow(t, testConfig(), path, nil)
	time.Sleep(100 * time.Millisecond) // the file does not exist yet
	w := tailtest.NewWriter(t, path)
	w.Lines("a1")
	w.Write("a")
	f.lines.WaitFor(t, 1)
	f.lines.Quiet(t, 1) // the partial line waits for its newline
	w.Write("2\n")
	ls := f.lines.WaitFor(t, 2)
	if texts(ls) != "a1,a2" {
		t.Errorf("lines = %s", texts(ls))
	}
	// Each line's Position resumes right after it.
	for i, l := range ls {
		m, err := Decode[FilePos](l.next)
		if err != nil {
			t.Fatal(err)
		}
		if p := m[path]; p.Offset != int64(3*(i+1)) || p.ContextOffset != p.Offset || p.Inode == 0 {
			t.Errorf("line %d: position %+v", i, p)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if f.idles.Load() == 0 {
		t.Error("idle was never called after the lines")
	}
	f.Stop(t)
}

func TestRenameRotationDrainsOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("r1")
	f := startFollow(t, testConfig(), path, nil)
	f.lines.WaitFor(t, 1)
	tailtest.Rotate(t, path)
	// The writer has not been HUPed yet: it still writes to app.log.1.
	w.Lines("r2")
	time.Sleep(100 * time.Millisecond)
	w.Write("r3") // the old file's last line never gets its newline
	w.HUP()
	w.Lines("r4")
	ls := f.lines.WaitFor(t, 4)
	f.lines.Quiet(t, 4)
	if texts(ls) != "r1,r2,r3,r4" {
		t.Errorf("lines = %s", texts(ls))
	}
	f.Stop(t)
	// Resuming from the cut line's position reads only the new file.
	f = startFollow(t, testConfig(), path, ls[2].next)
	if ls := f.lines.WaitFor(t, 1); texts(ls) != "r4" {
		t.Errorf("after resume: %s", texts(ls))
	}
	f.lines.Quiet(t, 1)
	f.Stop(t)
}

func TestCopytruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("c1", "c2")
	f := startFollow(t, testConfig(), path, nil)
	f.lines.WaitFor(t, 2)
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
	w.Lines("c3") // O_APPEND: lands at offset 0
	ls := f.lines.WaitFor(t, 3)
	f.lines.Quiet(t, 3)
	if texts(ls) != "c1,c2,c3" {
		t.Errorf("lines = %s", texts(ls))
	}
	f.Stop(t)
}

// A copytruncate the writer wrote past the old offset before the follower
// looked again: the size alone does not show it, the changed head does.
// The follower is held in idle while the file is truncated and rewritten.
func TestCopytruncateRewrittenPastOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("c1", "c2")
	tl, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu  sync.Mutex
		got []string
	)
	lines := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(got, ",")
	}
	inIdle, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		done <- tl.Follow(ctx, path, nil, func(b []byte, _ collectors.Position) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(b))
			return nil
		}, func() error {
			if first {
				first = false
				inIdle <- struct{}{}
				<-resume
			}
			return nil
		})
	}()
	<-inIdle
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	w.Lines("c3-longer", "c4")
	close(resume)
	const want = "c1,c2,c3-longer,c4"
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && lines() != want; {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow: %v", err)
	}
	if got := lines(); got != want {
		t.Errorf("lines = %s, want %s", got, want)
	}
}

// Every line's Position resumes exactly after it: also when the file it
// names was rotated to .1 while the follower was down, and the .1 is
// read to its end before the new file; a .gz is never read.
func TestResumeFromEveryLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("l1", "l2", "l3")
	f := startFollow(t, testConfig(), path, nil)
	first := f.lines.WaitFor(t, 3)
	f.Stop(t)

	w.Lines("l4") // while the follower is down
	tailtest.Rotate(t, path)
	w.Lines("l5") // before the HUP: still into app.log.1
	w.HUP()
	w.Lines("l6", "l7")
	if err := os.WriteFile(path+".2.gz", []byte("not read\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	all := []string{"l1", "l2", "l3", "l4", "l5", "l6", "l7"}
	for i := range first {
		var problems tailtest.Problems
		cfg := testConfig()
		cfg.Problems = &problems
		f := startFollow(t, cfg, path, first[i].next)
		want := strings.Join(all[i+1:], ",")
		ls := f.lines.WaitFor(t, len(all)-i-1)
		f.lines.Quiet(t, len(ls))
		f.Stop(t)
		if texts(ls) != want {
			t.Errorf("resume after %s: %s, want %s", first[i].text, texts(ls), want)
		}
		if ps := problems.All(); len(ps) != 0 {
			t.Errorf("problems: %v", ps)
		}
		if i == len(first)-1 {
			// And from the last position again: nothing more.
			f := startFollow(t, cfg, path, ls[len(ls)-1].next)
			f.lines.Quiet(t, 0)
			f.Stop(t)
		}
	}
}

func TestStartAtEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("old")
	w.Write("cut") // cut mid-line
	cfg := testConfig()
	cfg.StartAt = StartEnd
	f := startFollow(t, cfg, path, nil)
	time.Sleep(200 * time.Millisecond)
	w.Write(" rest\n")
	w.Lines("new")
	ls := f.lines.WaitFor(t, 1)
	f.lines.Quiet(t, 1)
	if texts(ls) != "new" {
		t.Errorf("lines = %s", texts(ls))
	}
	f.Stop(t)
	// start_at applies to a first start only: a saved position that
	// names no file (it did not exist) reads from the start.
	path2 := filepath.Join(t.TempDir(), "late.log")
	f = startFollow(t, cfg, path2, Encode([]FilePos{{Path: path2}}))
	time.Sleep(100 * time.Millisecond)
	tailtest.NewWriter(t, path2).Lines("x1")
	if ls := f.lines.WaitFor(t, 1); texts(ls) != "x1" {
		t.Errorf("lines = %s", texts(ls))
	}
	f.Stop(t)
}

func TestLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("s1", strings.Repeat("x", 1000), "s2")
	var problems tailtest.Problems
	cfg := testConfig()
	cfg.MaxLineBytes = 256
	cfg.Problems = &problems
	f := startFollow(t, cfg, path, nil)
	ls := f.lines.WaitFor(t, 2)
	f.lines.Quiet(t, 2)
	f.Stop(t)
	if texts(ls) != "s1,s2" {
		t.Errorf("lines = %s", texts(ls))
	}
	if ps := problems.All(); len(ps) != 1 || ps[0].Where != path+":offset 3" {
		t.Errorf("problems = %v", ps)
	}
}

func TestBadOrLostPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	w := tailtest.NewWriter(t, path)
	w.Lines("p1")
	var problems tailtest.Problems
	cfg := testConfig()
	cfg.Problems = &problems
	f := startFollow(t, cfg, path, collectors.Position("{not json"))
	ls := f.lines.WaitFor(t, 1)
	f.Stop(t)
	if ps := problems.All(); len(ps) != 1 || ps[0].Where != "position" {
		t.Errorf("problems = %v", ps)
	}

	// The file the position names was rotated twice while the follower
	// was down: say so, read the current file.
	pos := ls[0].next
	tailtest.Rotate(t, path)
	tailtest.Rotate(t, path)
	w.HUP()
	w.Lines("p2")
	problems = tailtest.Problems{}
	cfg.Problems = &problems
	f = startFollow(t, cfg, path, pos)
	ls = f.lines.WaitFor(t, 1)
	f.lines.Quiet(t, 1)
	f.Stop(t)
	if texts(ls) != "p2" {
		t.Errorf("lines = %s", texts(ls))
	}
	if ps := problems.All(); len(ps) != 1 || !strings.Contains(ps[0].Reason, "rotated more than once") {
		t.Errorf("problems = %v", ps)
	}

	// A file cut below the saved offset while the follower was down (its
	// head, and so its fingerprint, unchanged) is read from its start, and
	// said so.
	path = filepath.Join(t.TempDir(), "big.log")
	head := strings.Repeat("h", 1100)
	tailtest.NewWriter(t, path).Lines(head, "q1")
	f = startFollow(t, cfg, path, nil)
	pos = f.lines.WaitFor(t, 2)[1].next
	f.Stop(t)
	if err := os.Truncate(path, int64(len(head))+1); err != nil {
		t.Fatal(err)
	}
	problems = tailtest.Problems{}
	cfg.Problems = &problems
	f = startFollow(t, cfg, path, pos)
	ls = f.lines.WaitFor(t, 1)
	f.lines.Quiet(t, 1)
	f.Stop(t)
	if texts(ls) != head {
		t.Errorf("lines = %.20s...", texts(ls))
	}
	if ps := problems.All(); len(ps) != 1 || !strings.Contains(ps[0].Reason, "truncated") {
		t.Errorf("problems = %v", ps)
	}
}

// fsnotify wakes the follower and its own timer calls idle: with a
// one-hour poll, a line still arrives at once, also after a rotation.
func TestWakesWithoutPolling(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	w := tailtest.NewWriter(t, path)
	cfg := testConfig()
	cfg.PollInterval = time.Hour
	f := startFollow(t, cfg, path, nil)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	w.Lines("fast")
	f.lines.WaitFor(t, 1)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("line took %v", d)
	}
	tailtest.Rotate(t, path)
	w.HUP()
	w.Lines("fast2")
	f.lines.WaitFor(t, 2)
	// A noisy neighbour in the same directory wakes nothing.
	other := tailtest.NewWriter(t, filepath.Join(dir, "syslog"))
	for i := 0; i < 1000; i++ {
		other.Lines("noise")
	}
	w.Lines("fast3")
	f.lines.WaitFor(t, 3)
	f.Stop(t)
}

func TestPositionJSON(t *testing.T) {
	type extended struct {
		FilePos
		Skip []string `json:"skip,omitempty"`
	}
	// The shape authlog has written since its first release.
	old := `{"v":1,"files":[{"path":"/var/log/auth.log","device":2049,"inode":9978609,"fingerprint":"9f86d0","fingerprint_len":1024,"offset":81234,"context_offset":80990,"skip":["4b1f"]}]}`
	m, err := Decode[extended](collectors.Position(old))
	if err != nil {
		t.Fatal(err)
	}
	e := m["/var/log/auth.log"]
	if e.Device != 2049 || e.Inode != 9978609 || e.Fingerprint != "9f86d0" || e.FingerprintLen != 1024 || e.Offset != 81234 || e.ContextOffset != 80990 || fmt.Sprint(e.Skip) != "[4b1f]" {
		t.Errorf("decoded %+v", e)
	}
	if got := string(Encode([]extended{e})); got != old {
		t.Errorf("re-encoded\n%s\nwant\n%s", got, old)
	}
	for _, bad := range []string{
		`{"v":2,"files":[]}`,
		`{"v":1,"files":[{"path":"/a","offset":5,"context_offset":6}]}`,
		`{"v":1,"files":[{"path":"/a","offset":-1,"context_offset":0}]}`,
		`{"v":1,"files":[{"path":"/a","fingerprint_len":2000,"offset":1,"context_offset":0}]}`,
		`[]`,
	} {
		if _, err := Decode[FilePos](collectors.Position(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
	if m, err := Decode[FilePos](nil); err != nil || len(m) != 0 {
		t.Errorf("empty position: %v %v", m, err)
	}
}
