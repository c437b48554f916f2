package window

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// Span is a half-open time range [From, To).
type Span struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

func (s Span) String() string {
	return s.From.UTC().Format(time.RFC3339) + ".." + s.To.UTC().Format(time.RFC3339)
}

// Window is one closed range being read, and why.
type Window struct {
	Span
	// Rescan is set for a window of a re-scan of the recent past.
	Rescan bool `json:"rescan,omitempty"`
}

// State is everything the Engine needs to resume. It is the Position of
// every record (JSON) and the content of every progress mark.
type State struct {
	// V is the format version (1).
	V int `json:"v"`
	// Origin is where reading began on the first start (backfill_since):
	// nothing before it is ever read, re-scans included.
	Origin time.Time `json:"origin"`
	// Cursor is the end of the last drained main window: every event
	// before it that was visible when its window was read has been emitted.
	Cursor time.Time `json:"cursor"`
	// LastRescan is when the last re-scan started.
	LastRescan time.Time `json:"last_rescan,omitzero"`
	// Rescan is the part of a re-scan still to read.
	Rescan *Span `json:"rescan,omitempty"`
	// Win is the window being read when this position was taken, and Page
	// the provider's token for the page holding the record ("" for the
	// first page). Both are empty in progress marks.
	Win  *Window `json:"win,omitempty"`
	Page string  `json:"page,omitempty"`
	// Seq numbers the records emitted: the record carrying this position
	// has sequence number Seq, and a progress mark was written when Seq
	// records had been emitted.
	Seq uint64 `json:"seq"`
}

// MaxPositionSize bounds a Position handed back to Run.
const MaxPositionSize = 64 << 10

// Position encodes s.
func (s State) Position() collectors.Position {
	s.V = 1
	b, err := json.Marshal(s)
	if err != nil {
		// State holds only times, strings and integers.
		panic(fmt.Sprintf("window: marshal state: %v", err))
	}
	return b
}

// ParsePosition decodes a Position made by State.Position. A nil or empty
// position yields the zero State (first start).
func ParsePosition(p collectors.Position) (State, error) {
	var s State
	if len(p) == 0 {
		return s, nil
	}
	if len(p) > MaxPositionSize {
		return s, fmt.Errorf("position is %d bytes, more than %d", len(p), MaxPositionSize)
	}
	if err := json.Unmarshal(p, &s); err != nil {
		return State{}, fmt.Errorf("position is not a window state: %w", err)
	}
	if s.V != 1 {
		return State{}, fmt.Errorf("position has version %d, want 1", s.V)
	}
	if s.Win != nil && !s.Win.To.After(s.Win.From) {
		return State{}, fmt.Errorf("position window %s is empty", s.Win.Span)
	}
	return s, nil
}
