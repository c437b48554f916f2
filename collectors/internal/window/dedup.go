package window

import (
	"context"
	"fmt"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// Dedup is the de-duplication and sequence bookkeeping of a collector that
// reads no time windows (the SQS mode of cloudtrail), with the same
// crash guarantees as the Engine: ids are written ahead and rolled back to
// the committed position's sequence number.
type Dedup struct {
	store *Store
	seq   uint64
	now   func() time.Time
}

// OpenDedup opens the log in dir for a run from start.
func OpenDedup(dir string, start collectors.Position, clock Clock, problems collectors.ProblemReporter) (*Dedup, error) {
	st, err := ParsePosition(start)
	if err != nil {
		report(problems, "position", err.Error(), sample(start))
		st = State{}
	}
	store, _, err := OpenStore(dir, st.Seq, problems)
	if err != nil {
		return nil, err
	}
	if clock == nil {
		clock = SystemClock{}
	}
	return &Dedup{store: store, seq: st.Seq, now: clock.Now}, nil
}

// Seq returns the sequence number of the last record emitted.
func (d *Dedup) Seq() uint64 { return d.seq }

// Emit hands the events not emitted before to out, and returns how many.
func (d *Dedup) Emit(ctx context.Context, out collectors.Emitter, evs []event.Event) (int, error) {
	now := d.now().UTC()
	var recs []collectors.Record
	var entries []Entry
	seq := d.seq
	inBatch := map[string]bool{}
	for _, ev := range evs {
		if ev.ID == "" || inBatch[ev.ID] || d.store.Seen(ev.ID) {
			continue
		}
		inBatch[ev.ID] = true
		if ev.ObservedTime.IsZero() {
			ev.ObservedTime = now
		}
		seq++
		keep := ev.Time
		if keep.After(now) || keep.IsZero() {
			keep = now
		}
		entries = append(entries, Entry{ID: ev.ID, Time: keep, Seq: seq})
		recs = append(recs, collectors.Record{Event: ev, Position: State{Seq: seq}.Position()})
	}
	if len(recs) == 0 {
		return 0, nil
	}
	if err := d.store.Add(entries); err != nil {
		return 0, fmt.Errorf("record emitted ids: %w", err)
	}
	if err := out.Emit(ctx, recs...); err != nil {
		return 0, err
	}
	d.seq = seq
	return len(recs), nil
}

// Note records a note at the current sequence number (see Note).
func (d *Dedup) Note(kind, key string, pin bool) error {
	return d.store.AddNote(Note{Kind: kind, Key: key, Time: d.now(), Seq: d.seq, Pin: pin})
}

// Notes returns the notes that survived the rollback, oldest first.
func (d *Dedup) Notes() []Note { return d.store.Notes() }

// PruneBefore forgets ids and notes older than t at the next rewrite.
func (d *Dedup) PruneBefore(t time.Time) { d.store.PruneBefore(t) }

// Close closes the log.
func (d *Dedup) Close() error { return d.store.Close() }
