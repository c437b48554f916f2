package cloudjson

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// MapFunc maps one provider record to the events it holds; ok is false
// for a record that is readable but says nothing about access. evs may be
// reused by the next call: callers copy the events out first.
type MapFunc func(rec []byte) (evs []event.Event, ok bool, err error)

// One adapts a mapper that makes at most one event of a record. It returns
// the event in a slice it reuses (see MapFunc), so it does not allocate per
// record; each page or parse takes its own One.
func One(m func(rec []byte) (event.Event, bool, error)) MapFunc {
	var buf [1]event.Event
	return func(rec []byte) ([]event.Event, bool, error) {
		ev, ok, err := m(rec)
		if err != nil || !ok {
			return nil, ok, err
		}
		buf[0] = ev
		return buf[:], true, nil
	}
}

// MapPage maps the records of one API page in order. A record m cannot
// read is reported to problems as "where #N" (N counting from 1) and
// skipped.
func MapPage(recs []json.RawMessage, m MapFunc, problems collectors.ProblemReporter, where string) []event.Event {
	var out []event.Event
	for i, rec := range recs {
		evs, ok, err := m(rec)
		if err != nil {
			Report(problems, fmt.Sprintf("%s #%d", where, i+1), err.Error(), rec)
			continue
		}
		if ok {
			out = append(out, evs...)
		}
	}
	return out
}

// Parse is the Parse of a cloud collector's stateless parser: every
// record Records finds in r (keys as there) is mapped by m, and each event,
// its Source.File set to name, is emitted on its own. Errors name typ and
// the input.
func Parse(ctx context.Context, typ string, r io.Reader, name string, keys []string, m MapFunc,
	problems collectors.ProblemReporter, out collectors.Emitter) error {
	err := Records(ctx, r, name, keys, problems, func(where string, rec json.RawMessage) error {
		evs, ok, err := m(rec)
		if err != nil || !ok {
			return err
		}
		for _, ev := range evs {
			ev.Source.File = name
			if err := out.Emit(ctx, collectors.Record{Event: ev}); err != nil {
				return fmt.Errorf("%w: %w", ErrStop, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: parse %s: %w", typ, name, err)
	}
	return nil
}
