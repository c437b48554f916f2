package cloudtrail

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// BenchmarkParseLogFile parses a gzipped trail file of 1000 records, four
// in five of them provisioning events.
func BenchmarkParseLogFile(b *testing.B) {
	var recs []any
	for i := range 1000 {
		recs = append(recs, trailRecord(i, "us-east-1", time.Unix(1700000000+int64(i), 0), time.Time{}).Payload)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	json.NewEncoder(zw).Encode(map[string]any{"Records": recs})
	zw.Close()
	file := buf.Bytes()
	p := NewParser(collectors.Settings{Type: Type})
	n := 0
	out := collectors.EmitFunc(func(_ context.Context, r ...collectors.Record) error { n += len(r); return nil })
	b.SetBytes(int64(len(file)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(context.Background(), bytes.NewReader(file), "f", out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	if n == 0 {
		b.Fatal("no events")
	}
}
