package authlog

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
	"github.com/provtrail/provtrail/collectors/internal/tail/tailtest"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.ndjson from the parser's output")

// testNow is the fixed "now" of the tests: the day after the corpus was
// recorded.
var testNow = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// problemLog collects reported problems.
type problemLog struct{ tailtest.Problems }

func (l *problemLog) all() []collectors.Problem { return l.All() }

func testConfig() *Config {
	cfg := DefaultConfig()
	cfg.Paths = []string{"/var/log/auth.log"}
	cfg.Timezone, cfg.Location, cfg.Year = "UTC", time.UTC, 2026
	return cfg
}

func testParser(t testing.TB, problems collectors.ProblemReporter) *Parser {
	t.Helper()
	p, err := NewParser(collectors.Settings{Type: Type, Name: "test", Hostname: "testhost", Problems: problems}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	p.opts.now = func() time.Time { return testNow }
	return p
}

// parseAll runs the parser over data and returns its records.
func parseAll(t testing.TB, p *Parser, name string, data []byte) []collectors.Record {
	t.Helper()
	var recs []collectors.Record
	err := p.Parse(context.Background(), bytes.NewReader(data), name, collectors.EmitFunc(func(_ context.Context, rs ...collectors.Record) error {
		recs = append(recs, rs...)
		return nil
	}))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return recs
}

func TestGolden(t *testing.T) {
	logs, err := filepath.Glob("testdata/*.log")
	if err != nil || len(logs) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, in := range logs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var problems problemLog
			recs := parseAll(t, testParser(t, &problems), filepath.Base(in), data)
			var got bytes.Buffer
			for _, r := range recs {
				if err := event.Validate(&r.Event); err != nil {
					t.Errorf("event %s (%s) invalid: %v", r.Event.ID, r.Event.Action, err)
				}
				b, err := json.Marshal(r.Event)
				if err != nil {
					t.Fatal(err)
				}
				got.Write(b)
				got.WriteByte('\n')
			}
			for _, p := range problems.all() {
				t.Errorf("unexpected problem: %s", p)
			}
			golden := strings.TrimSuffix(in, ".log") + ".golden.ndjson"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < max(len(gl), len(wl)); i++ {
					var g, w string
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Fatalf("%s differs at event %d:\n got  %s\n want %s", golden, i+1, g, w)
					}
				}
			}
		})
	}
}
