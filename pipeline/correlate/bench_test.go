package correlate

import (
	"fmt"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// BenchmarkCorrelate: each change reported by three collectors, 1000
// changes in flight, expired as the clock moves.
func BenchmarkCorrelate(b *testing.B) {
	const changes = 1000
	var recs [3][]collectors.Record
	for i := range changes {
		for j, col := range []string{"authlog", "auditd", "accounts"} {
			e := mk(col, fmt.Sprint(col, i), event.UserCreate, fmt.Sprint("u", i), "", t0.Add(time.Duration(i)*time.Millisecond), i+1)
			recs[j] = append(recs[j], collectors.Record{Event: e, Position: collectors.Position(fmt.Sprint(i))})
		}
	}
	keys := []string{"authlog/system", "auditd/local", "accounts/local"}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		c := New(Config{})
		now := t0
		for j, k := range keys {
			c.Add(now, k, recs[j])
		}
		now = now.Add(DefaultHold)
		for _, o := range c.Expire(now) {
			if o.Event != nil {
				n++
			}
		}
	}
	b.ReportMetric(float64(3*changes)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if n != changes*b.N {
		b.Fatalf("%d merged events, want %d", n, changes*b.N)
	}
}
