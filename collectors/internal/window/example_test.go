package window_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/event"
)

// A source implements Fetch for one page of a window; the Engine does the
// rest. Here the "provider" has one event, at 00:45, that it returns twice
// (once in each overlapping window): it is emitted once.
func ExampleEngine() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := windowtest.NewClock(start.Add(2 * time.Hour))
	fetch := window.FetchFunc(func(_ context.Context, w window.Window, page string) (window.Page, error) {
		at := start.Add(45 * time.Minute)
		if at.Before(w.From) || !at.Before(w.To) {
			return window.Page{}, nil
		}
		ev := event.Event{ID: event.NewID("example", "", "evt-1"), Time: at, Action: event.UserCreate,
			Target: event.Target{User: &event.User{Name: "bob"}}, Source: event.Source{Collector: "example", EventID: "evt-1"}}
		ev.Complete()
		return window.Page{Events: []event.Event{ev}}, nil
	})
	dir, _ := os.MkdirTemp("", "window-example")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	clock.StopAt(start.Add(3*time.Hour), cancel)
	e := &window.Engine{
		Config: window.Config{SettleLag: 5 * time.Minute, Overlap: 30 * time.Minute, MaxWindow: time.Hour,
			PollInterval: time.Minute, BackfillSince: start},
		Fetcher: fetch, Clock: clock, StateDir: dir,
	}
	e.Run(ctx, nil, collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
		for _, r := range recs {
			fmt.Println(r.Event.Action, r.Event.Target.User.Name, r.Event.Time.Format(time.Kitchen))
		}
		return nil
	}))
	fmt.Println("duplicates dropped:", e.Stats.Duplicates.Load())
	// Output:
	// user.create bob 12:45AM
	// duplicates dropped: 1
}
