package journald

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/provtrail/provtrail/collectors"
)

// BenchmarkParse measures entries/s over the recorded real journal.
func BenchmarkParse(b *testing.B) {
	one, err := os.ReadFile("testdata/real-namespace.json")
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat(one, 100)
	n := bytes.Count(data, []byte("\n"))
	ps, err := NewParser(collectors.Settings{Hostname: "vm"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	sink := collectors.EmitFunc(func(context.Context, ...collectors.Record) error { return nil })
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ps.Parse(context.Background(), bytes.NewReader(data), "bench", sink); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
