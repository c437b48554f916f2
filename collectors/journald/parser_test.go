package journald

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

type problemLog struct{ lines []string }

func (p *problemLog) Report(pr collectors.Problem) { p.lines = append(p.lines, pr.String()) }

func parseFile(t testing.TB, path string) ([]collectors.Record, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pl := &problemLog{}
	ps, err := NewParser(collectors.Settings{Hostname: "vm", Name: "test", Problems: pl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []collectors.Record
	err = ps.Parse(context.Background(), f, filepath.Base(path), collectors.EmitFunc(func(_ context.Context, rs ...collectors.Record) error {
		recs = append(recs, rs...)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return recs, pl.lines
}

// TestParserGolden maps recorded journalctl -o json output (testdata/*.json)
// to events (*.golden.ndjson: event, then Position, per record).
func TestParserGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			recs, probs := parseFile(t, path)
			var b bytes.Buffer
			for _, r := range recs {
				e := r.Event
				e.ObservedTime = time.Time{}
				if err := event.Validate(&r.Event); err != nil {
					t.Errorf("%s: %v", summary(r.Event), err)
				}
				line, _ := json.Marshal(e)
				b.Write(line)
				b.WriteString("\n")
				b.Write(r.Position)
				b.WriteString("\n")
			}
			golden(t, strings.TrimSuffix(path, ".json")+".golden.ndjson", b.String())
			p := strings.Join(probs, "\n")
			if p != "" {
				p += "\n"
			}
			golden(t, strings.TrimSuffix(path, ".json")+".problems.txt", p)
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
