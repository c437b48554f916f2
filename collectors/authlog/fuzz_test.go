package authlog

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

// FuzzParse feeds arbitrary input to the parser: it must not panic, every
// event it emits must pass schema validation and carry no crypt hash, and
// parsing the same input twice gives the same events.
func FuzzParse(f *testing.F) {
	logs, _ := filepath.Glob("testdata/*.log")
	for _, in := range logs {
		data, err := os.ReadFile(in)
		if err != nil {
			f.Fatal(err)
		}
		// Seed with small windows of real lines, so mutations stay close
		// to the grammar.
		lines := strings.SplitAfter(string(data), "\n")
		for i := 0; i < len(lines); i += 3 {
			f.Add([]byte(strings.Join(lines[i:min(i+4, len(lines))], "")))
		}
	}
	f.Add([]byte("<86>1 2026-11-25T17:38:40Z vm useradd 1 - [a b=\"\\]\"] new group: name=g, GID=1\n"))
	f.Add([]byte("Nov 25 17:38:40 vm sudo: a : TTY=pts/0 ; USER=root ; COMMAND=/usr/sbin/usermod -p $6$x$y b\nNov 25 17:38:40 vm usermod[5]: change user 'b' password\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		run := func() []byte {
			var problems problemLog
			p := testParser(t, &problems)
			p.opts.maxLine = 256
			var out bytes.Buffer
			err := p.Parse(context.Background(), bytes.NewReader(data), "fuzz", collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
				for _, r := range recs {
					if err := event.Validate(&r.Event); err != nil {
						t.Fatalf("invalid event: %v\n%s", err, mustJSON(r.Event))
					}
					out.WriteString(mustJSON(r.Event))
					out.WriteByte('\n')
				}
				return nil
			}))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			return out.Bytes()
		}
		a, b := run(), run()
		if !bytes.Equal(a, b) {
			t.Fatalf("two parses differ:\n%s\n%s", a, b)
		}
	})
}
