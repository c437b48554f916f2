package window_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/event"
)

// BenchmarkEngine runs the Engine over pages of 100 new events each: the
// cost of de-duplication, the write-ahead log (one fsync per page) and
// position encoding per event.
func BenchmarkEngine(b *testing.B) {
	clock := windowtest.NewClock(t0)
	seq := 0
	f := window.FetchFunc(func(_ context.Context, w window.Window, page string) (window.Page, error) {
		var p window.Page
		for range 100 {
			seq++
			id := fmt.Sprint(seq)
			ev := event.Event{ID: event.NewID("bench", "", id), Time: w.From, Action: event.UserCreate,
				Target: event.Target{User: &event.User{Name: id}}, Source: event.Source{Collector: "bench", EventID: id}}
			ev.Complete()
			p.Events = append(p.Events, ev)
		}
		return p, nil
	})
	emitted := 0
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		clock.StopAt(clock.Now().Add(2*time.Hour), cancel)
		e := &window.Engine{Config: window.Config{MaxWindow: time.Hour, PollInterval: time.Minute, BackfillSince: clock.Now().Add(-24 * time.Hour)},
			Fetcher: f, Clock: clock, StateDir: b.TempDir()}
		e.Run(ctx, nil, collectors.EmitFunc(func(_ context.Context, r ...collectors.Record) error { emitted += len(r); return nil }))
		cancel()
	}
	b.ReportMetric(float64(emitted)/b.Elapsed().Seconds(), "events/s")
}
