// Package windowtest holds the test doubles the cloud collectors' tests
// share: a fake clock that makes settle lags and retry waits pass
// instantly, a recording sink that can crash part-way through an Emit like
// an agent killed mid-batch, and a timeline of provider events that become
// visible late.
package windowtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// Clock is a fake window.Clock. Sleep advances it at once.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	slept  []time.Duration
	stopAt time.Time
	cancel context.CancelFunc
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep advances the clock by d and returns; once the clock passes the
// StopAt time it cancels the run and returns the context's error.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	c.slept = append(c.slept, d)
	stop := !c.stopAt.IsZero() && !c.now.Before(c.stopAt) && c.cancel != nil
	cancel := c.cancel
	c.mu.Unlock()
	if stop {
		cancel()
		return ctx.Err()
	}
	return nil
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// StopAt makes the first Sleep at or after t call cancel.
func (c *Clock) StopAt(t time.Time, cancel context.CancelFunc) {
	c.mu.Lock()
	c.stopAt, c.cancel = t, cancel
	c.mu.Unlock()
}

// Sleeps returns every duration Sleep was called with.
func (c *Clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.slept)
}

// ErrCrash is what a crashing Sink returns from Emit.
var ErrCrash = errors.New("windowtest: simulated crash")

// Sink records what a collector emitted, as a spool would: a record is
// committed (its position becomes the resume point) when Emit accepts it.
// With CrashAfter > 0, the Emit that reaches that many records in total
// accepts only up to it and returns ErrCrash, like an agent killed in the
// middle of spooling a batch.
type Sink struct {
	mu         sync.Mutex
	Records    []collectors.Record
	CrashAfter int
}

// Emit implements collectors.Emitter.
func (s *Sink) Emit(ctx context.Context, recs ...collectors.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if s.CrashAfter > 0 && len(s.Records) >= s.CrashAfter {
			s.CrashAfter = 0
			return ErrCrash
		}
		s.Records = append(s.Records, r)
	}
	return nil
}

// Position returns the position of the last committed record (nil if none).
func (s *Sink) Position() collectors.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.Records) == 0 {
		return nil
	}
	return s.Records[len(s.Records)-1].Position
}

// IDs returns the committed events' ids in order.
func (s *Sink) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.Records))
	for i, r := range s.Records {
		out[i] = r.Event.ID
	}
	return out
}

// SourceIDs returns the committed events' source event ids in order.
func (s *Sink) SourceIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.Records))
	for i, r := range s.Records {
		out[i] = r.Event.Source.EventID
	}
	return out
}

// ExactlyOnce checks that got holds every id of want once and nothing else.
func ExactlyOnce(got, want []string) error {
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	var errs []error
	for _, id := range want {
		switch n := count[id]; n {
		case 1:
		case 0:
			errs = append(errs, fmt.Errorf("%s lost", id))
		default:
			errs = append(errs, fmt.Errorf("%s emitted %d times", id, n))
		}
		delete(count, id)
	}
	for id, n := range count {
		errs = append(errs, fmt.Errorf("%s emitted %d times but not expected", id, n))
	}
	return errors.Join(errs...)
}

// Item is one provider event on a Timeline.
type Item struct {
	ID string
	// Time is the event's time; VisibleAt when the provider's API starts
	// returning it (late delivery: VisibleAt well after Time).
	Time, VisibleAt time.Time
	// Payload is the provider's JSON for the event.
	Payload any
}

// Timeline is a provider's event store, safe for concurrent use.
type Timeline struct {
	mu    sync.Mutex
	items []Item
}

// Add adds items.
func (t *Timeline) Add(items ...Item) {
	t.mu.Lock()
	t.items = append(t.items, items...)
	t.mu.Unlock()
}

// IDs returns every item's id.
func (t *Timeline) IDs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, len(t.items))
	for i, it := range t.items {
		out[i] = it.ID
	}
	return out
}

// Query returns the items with from <= Time < to (to zero: no bound) that
// are visible at now, oldest first (newest first with desc), ties broken
// by id so that page boundaries are stable.
func (t *Timeline) Query(from, to, now time.Time, desc bool) []Item {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Item
	for _, it := range t.items {
		if it.Time.Before(from) || (!to.IsZero() && !it.Time.Before(to)) || it.VisibleAt.After(now) {
			continue
		}
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b Item) int {
		c := a.Time.Compare(b.Time)
		if c == 0 {
			c = cmpString(a.ID, b.ID)
		}
		if desc {
			c = -c
		}
		return c
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
