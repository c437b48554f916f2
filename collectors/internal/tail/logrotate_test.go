package tail

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/tail/tailtest"
)

// logrotateBin returns the real logrotate, or skips (fails in CI).
func logrotateBin(t *testing.T) string {
	bin, err := exec.LookPath("logrotate")
	if err != nil {
		if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
			t.Fatal("logrotate not installed (apt-get install logrotate)")
		}
		t.Skip("logrotate not installed")
	}
	return bin
}

// The real logrotate rotating twice while lines keep coming, then a
// restart from the last line's Position that rotates once more while the
// follower is down: every line exactly once, in order. Two stanzas:
// Debian's rsyslog one (rename + create, compress, delaycompress; the
// writer keeps writing to the renamed file until its HUP) and
// copytruncate (the writer never reopens).
func TestRealLogrotate(t *testing.T) {
	bin := logrotateBin(t)
	for _, tc := range []struct {
		name   string
		stanza string
		// hup: the writer reopens after a rotation (postrotate's HUP).
		hup bool
	}{
		{"create-delaycompress", "create 0640\n\tcompress\n\tdelaycompress", true},
		{"copytruncate", "copytruncate\n\tcompress\n\tdelaycompress", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			conf := filepath.Join(dir, "logrotate.conf")
			if err := os.WriteFile(conf, []byte(path+" {\n\trotate 4\n\tweekly\n\tmissingok\n\tnotifempty\n\t"+tc.stanza+"\n}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			logrotate := func() {
				t.Helper()
				out, err := exec.Command(bin, "-f", "-s", filepath.Join(dir, "state"), conf).CombinedOutput()
				if err != nil {
					t.Fatalf("logrotate: %v\n%s", err, out)
				}
			}
			w := tailtest.NewWriter(t, path)
			var want []string
			next := func() {
				l := fmt.Sprintf("line %d", len(want)+1)
				w.Lines(l)
				want = append(want, l)
			}
			hup := func() {
				if tc.hup {
					w.HUP()
				}
			}
			f := startFollow(t, testConfig(), path, nil)
			next()
			next()
			f.lines.WaitFor(t, 2)
			logrotate()
			next() // create: into app.log.1 until the HUP
			hup()
			next()
			f.lines.WaitFor(t, 4)
			time.Sleep(400 * time.Millisecond)
			logrotate() // app.log.1 -> app.log.2.gz, app.log -> app.log.1
			next()
			hup()
			next()
			ls := f.lines.WaitFor(t, len(want))
			f.lines.Quiet(t, len(want))
			if got := texts(ls); got != strings.Join(want, ",") {
				t.Errorf("lines = %s, want %s", got, strings.Join(want, ","))
			}
			if _, err := os.Stat(path + ".2.gz"); err != nil {
				t.Errorf("logrotate did not compress: %v", err)
			}
			f.Stop(t)

			// Down: lines, a rotation, more lines. Then a restart from
			// the last Position gets exactly those.
			last := ls[len(ls)-1].next
			before := len(want)
			next()
			logrotate()
			next()
			hup()
			next()
			var problems tailtest.Problems
			cfg := testConfig()
			cfg.Problems = &problems
			f = startFollow(t, cfg, path, last)
			ls = f.lines.WaitFor(t, len(want)-before)
			f.lines.Quiet(t, len(want)-before)
			if got, w := texts(ls), strings.Join(want[before:], ","); got != w {
				t.Errorf("after restart: %s, want %s", got, w)
			}
			f.Stop(t)
			if ps := problems.All(); len(ps) != 0 {
				t.Errorf("problems: %v", ps)
			}
		})
	}
}
