package auditd

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// BenchmarkParse measures audit.log throughput over the real records,
// repeated.
func BenchmarkParse(b *testing.B) {
	one, err := os.ReadFile("testdata/research-debian12.log")
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat(one, 200)
	p := NewParser(collectors.Settings{Hostname: "vm"}, nil)
	p.now = func() time.Time { return time.Unix(1, 0) }
	sink := collectors.EmitFunc(func(context.Context, ...collectors.Record) error { return nil })
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(context.Background(), bytes.NewReader(data), "bench", sink); err != nil {
			b.Fatal(err)
		}
	}
}
