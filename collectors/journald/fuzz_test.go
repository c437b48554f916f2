package journald

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// FuzzParse: any journalctl output is read to its end without panic and
// every event is valid.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			f.Add(l)
		}
	}
	ps, err := NewParser(collectors.Settings{Hostname: "h", Problems: collectors.ProblemFunc(func(collectors.Problem) {})}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := ps.Parse(context.Background(), bytes.NewReader(data), "fuzz", collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
			for _, r := range recs {
				if err := event.Validate(&r.Event); err != nil {
					t.Fatalf("invalid event: %v\n%+v", err, r.Event)
				}
				if len(r.Position) == 0 && !strings.Contains(string(data), "__CURSOR") {
					t.Fatal("record without position")
				}
			}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfig(t *testing.T) {
	fac := NewFactory()
	for _, tc := range []struct{ src, wantErr string }{
		{``, ""},
		{"namespace = \"ops\"\nmatches = [\"SYSLOG_FACILITY=10\"]\nstart_at = \"beginning\"\nburst_idle = \"50ms\"", ""},
		{`start_at = "now"`, "Invalid start_at"},
		{`matches = ["facility=10"]`, "Invalid match"},
		{`journalctl = "journalctl"`, "Invalid journalctl"},
		{"namespace = \"a\"\ndirectory = \"/var/log/journal\"", "Conflicting attributes"},
		{`burst_idle = "forever"`, "Invalid duration"},
		{`cursor_file = "/x"`, "Unsupported argument"},
	} {
		f, diags := hclParse(t, tc.src)
		cfg, d := fac.DecodeConfig(f, nil)
		diags = append(diags, d...)
		if cfg != nil {
			diags = append(diags, cfg.Validate()...)
		}
		if tc.wantErr == "" {
			if diags.HasErrors() {
				t.Errorf("%q: %v", tc.src, diags)
			}
			continue
		}
		if !strings.Contains(diags.Error(), tc.wantErr) {
			t.Errorf("%q: got %v, want %s", tc.src, diags, tc.wantErr)
		}
	}
}

func TestArgs(t *testing.T) {
	c := &Collector{cfg: *DefaultConfig()}
	got := strings.Join(c.args(&follow{cursor: "s=1;t=2"}), " ")
	if !strings.Contains(got, "--lines=all --after-cursor=s=1;t=2") || !strings.HasSuffix(got, "SYSLOG_FACILITY=10 SYSLOG_FACILITY=4 + _TRANSPORT=audit") {
		t.Errorf("args: %s", got)
	}
	if got := strings.Join(c.args(&follow{}), " "); !strings.Contains(got, "--lines=0") {
		t.Errorf("first start at end: %s", got)
	}
	if tm, ok := cursorTime("s=a;i=1c3;t=6611d8451906e;x=1"); !ok || tm.UnixMicro() != 0x6611d8451906e {
		t.Errorf("cursorTime: %v %v", tm, ok)
	}
}
