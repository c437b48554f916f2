package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/event"
)

// Stored is an event as central's index holds it: its index fields and
// the JSON it was parsed from. The engine decodes the JSON only for the
// rules that need more than the index fields.
type Stored struct {
	// Fields are the index fields; Actor, User and Group are the name,
	// or the id when the name is empty.
	Fields   Fields
	ID       string
	Time     time.Time
	LogIndex int64
	// NamesExact says that Fields' Actor, User and Group are the event's
	// names ("" when it has none), never ids: the engine then does not
	// read the names from JSON.
	NamesExact bool
	// JSON is the event's line in its batch body. It must be valid JSON
	// (central indexes an event only when it parsed); the engine does not
	// retain it.
	JSON []byte
}

// EvaluateStored is EvaluateThrough for events as central's index holds
// them. An event is decoded only when a rule that may match it (its
// literal guards pass) needs fields beyond the index's: rules whose
// conditions and keys are literal tests of the action, outcome, actor,
// user, group, host or system never decode it. An event whose JSON does
// not decode as an event is skipped by the rules that need it, with a
// warning.
func (e *Engine) EvaluateStored(ctx context.Context, events []Stored, through int64) error {
	return e.evaluate(ctx, len(events), func(i int, in *input) {
		s := &events[i]
		in.index, in.raw = s.Fields, s.JSON
		in.ref = EventRef{ID: s.ID, LogIndex: s.LogIndex, Time: s.Time}
		if s.NamesExact {
			in.exact, in.exactOK = s.Fields, true
		}
	}, &through)
}

// input is the event being evaluated, and what has been derived from it
// so far.
type input struct {
	ref EventRef
	// index are the fields every rule may filter on (necessary
	// conditions); outside names they are the event's.
	index Fields
	// exact are the fields with the HCL event's meaning (names only);
	// valid when exactOK.
	exact   Fields
	exactOK bool
	ev      *event.Event
	raw     []byte
	err     error // from decoding raw
	warned  bool  // err was logged
	hctx    *hcl.EvalContext
}

func (in *input) setDecoded(ix Indexed) {
	ev := ix.Event
	in.ev = ev
	in.exact, in.exactOK = exactFields(ev), true
	in.index = in.exact
	in.ref = EventRef{ID: ev.ID, LogIndex: ix.LogIndex, Time: ev.Time}
}

// names returns the event's fields with names that are names (not ids).
func (e *Engine) names(in *input) (*Fields, error) {
	if in.exactOK {
		return &in.exact, nil
	}
	if in.ev == nil && in.err == nil {
		if n, ok := scanNames(in.raw); ok {
			in.exact = in.index
			in.exact.Actor, in.exact.User, in.exact.Group = n.actor, n.user, n.group
			in.exactOK = true
			return &in.exact, nil
		}
	}
	ev, err := e.decoded(in)
	if err != nil {
		return nil, err
	}
	in.exact, in.exactOK = exactFields(ev), true
	return &in.exact, nil
}

func (e *Engine) decoded(in *input) (*event.Event, error) {
	if in.ev != nil || in.err != nil {
		return in.ev, in.err
	}
	ev := new(event.Event)
	if err := json.Unmarshal(in.raw, ev); err != nil {
		in.err = fmt.Errorf("decode event: %w", err)
		return nil, in.err
	}
	in.ev = ev
	return ev, nil
}

func (e *Engine) hclContext(in *input) (*hcl.EvalContext, error) {
	if in.hctx != nil {
		return in.hctx, nil
	}
	ev, err := e.decoded(in)
	if err != nil {
		return nil, err
	}
	in.hctx = withEvent(e.evalCtx, ev, e.need)
	return in.hctx, nil
}
