package auditd

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

var fixedNow = time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)

type problemLog struct{ lines []string }

func (p *problemLog) Report(pr collectors.Problem) { p.lines = append(p.lines, pr.String()) }

func parseFile(t testing.TB, path string) (recs []collectors.Record, probs []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pl := &problemLog{}
	p := NewParser(collectors.Settings{Hostname: "vm", Name: "test", Problems: pl}, nil)
	p.now = func() time.Time { return fixedNow }
	err = p.Parse(context.Background(), f, filepath.Base(path), collectors.EmitFunc(func(_ context.Context, rs ...collectors.Record) error {
		recs = append(recs, rs...)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return recs, pl.lines
}

// TestParserGolden parses every testdata/*.log into *.golden.ndjson (one
// event per line, then its Position) and *.problems.txt.
func TestParserGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.log")
	if len(files) < 3 {
		t.Fatalf("testdata: %v", files)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			recs, probs := parseFile(t, path)
			var b bytes.Buffer
			for _, r := range recs {
				if err := event.Validate(&r.Event); err != nil {
					t.Errorf("%s: %v", r.Event.Source.EventID, err)
				}
				line, _ := json.Marshal(r.Event)
				b.Write(line)
				b.WriteString("\n")
				b.Write(r.Position)
				b.WriteString("\n")
			}
			if strings.Contains(b.String(), "$6$") || strings.Contains(strings.Join(probs, "\n"), "$6$") {
				t.Error("a password hash survived into the output")
			}
			golden(t, strings.TrimSuffix(path, ".log")+".golden.ndjson", b.String())
			p := strings.Join(probs, "\n")
			if p != "" {
				p += "\n"
			}
			golden(t, strings.TrimSuffix(path, ".log")+".problems.txt", p)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if got == "" {
			os.Remove(path)
			return
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		want = nil
	} else if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s differs (go test -update to accept)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestSplitInner(t *testing.T) {
	for _, tc := range []struct{ in, op, next, nextVal string }{
		{`op=adding user id=1001 exe="/usr/sbin/useradd" res=success`, "adding user", "id", "1001"},
		{`op=changing /etc/group; group pt_ops/1001, new name: pt_ops2 acct="pt_ops" exe="x"`, "changing /etc/group; group pt_ops/1001, new name: pt_ops2", "acct", "pt_ops"},
		{`op= id=1001 exe="?"`, "", "id", "1001"},
		{`op=add-user-to-group grp="wheel" acct="alice"`, "add-user-to-group", "grp", "wheel"},
		{`op=PAM:chauthtok grantors=pam_permit acct="x"`, "PAM:chauthtok", "grantors", "pam_permit"},
		{`op=add-user acct=616C696365206A72 exe="?"`, "add-user", "acct", "alice jr"},
	} {
		fs := splitInner(tc.in)
		if fs.get("op") != tc.op || fs.get(tc.next) != tc.nextVal {
			t.Errorf("%s: got %+v", tc.in, fs)
		}
	}
}
