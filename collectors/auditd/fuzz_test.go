package auditd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// FuzzParse: any input is read to its end without panic; every event is
// valid, carries no crypt hash, and positions never go backwards.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			f.Add(l)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := NewParser(collectors.Settings{Hostname: "h", Problems: collectors.ProblemFunc(func(pr collectors.Problem) {
			if strings.Contains(pr.Sample, "$6$x$") {
				t.Fatalf("hash in problem sample: %q", pr.Sample)
			}
		})}, nil)
		p.now = func() time.Time { return time.Unix(1, 0) }
		last := int64(-1)
		err := p.Parse(context.Background(), bytes.NewReader(data), "fuzz", collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
			for _, r := range recs {
				if err := event.Validate(&r.Event); err != nil {
					t.Fatalf("invalid event: %v\n%+v", err, r.Event)
				}
				var fp filePosition
				if err := json.Unmarshal(r.Position, &fp); err != nil || fp.Offset < last || fp.Offset > int64(len(data)) {
					t.Fatalf("position %s after %d (len %d)", r.Position, last, len(data))
				}
				last = fp.Offset
			}
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestResumeFromEveryPosition parses each testdata file, then resumes from
// every record's Position: exactly the later events come out again.
func TestResumeFromEveryPosition(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.log")
	for _, path := range files {
		data, _ := os.ReadFile(path)
		recs, _ := parseFile(t, path)
		for i, r := range recs {
			var fp filePosition
			if err := json.Unmarshal(r.Position, &fp); err != nil {
				t.Fatal(err)
			}
			p := NewParser(collectors.Settings{Hostname: "vm", Name: "test"}, nil)
			var ids []string
			p.Parse(context.Background(), bytes.NewReader(data[fp.Offset:]), filepath.Base(path), collectors.EmitFunc(func(_ context.Context, rs ...collectors.Record) error {
				for _, r := range rs {
					ids = append(ids, r.Event.ID)
				}
				return nil
			}))
			var want []string
			for _, later := range recs[i+1:] {
				want = append(want, later.Event.ID)
			}
			if strings.Join(ids, ",") != strings.Join(want, ",") {
				t.Errorf("%s: resuming after record %d gave %v, want %v", path, i, ids, want)
			}
		}
	}
}

func TestConfig(t *testing.T) {
	fac := NewFactory()
	for _, tc := range []struct{ src, wantErr string }{
		{``, ""},
		{`path = "/var/log/audit/audit.log"` + "\nprivileged_groups = [\"wheel\"]", ""},
		{`path = "audit.log"`, "Invalid path"},
		{`paths = "/x"`, "Unsupported argument"},
		{"start_at = \"end\"\npoll_interval = \"250ms\"\nrotate_wait = \"0s\"", ""},
		{`start_at = "middle"`, "Invalid start_at"},
		{`poll_interval = "1ms"`, "Invalid poll_interval"},
		{`rotate_wait = "soon"`, "Invalid duration"},
	} {
		cfg, diags := decodeHCL(t, fac, tc.src)
		if tc.wantErr == "" {
			if diags.HasErrors() || cfg == nil {
				t.Errorf("%q: %v", tc.src, diags)
			}
			continue
		}
		if !strings.Contains(diags.Error(), tc.wantErr) {
			t.Errorf("%q: got %v, want %s", tc.src, diags, tc.wantErr)
		}
	}
	cfg, _ := decodeHCL(t, fac, "")
	if c := cfg.(*Config); c.StartAt != "beginning" || c.PollInterval != time.Second || c.RotateWait != time.Second {
		t.Errorf("defaults: %+v", c)
	}
	if _, err := fac.New(collectors.Settings{}, cfg); err != nil {
		t.Errorf("New with the shared tailer: %v", err)
	}
}
