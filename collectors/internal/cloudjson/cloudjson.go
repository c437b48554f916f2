// Package cloudjson reads the JSON exports of cloud audit APIs for the
// collectors' stateless parsers: a JSON array of records, one record, a
// stream of records (NDJSON or concatenated), or an API response or export
// file that wraps its records in a named array ("Records", "value",
// "items", "entries", ...), in any mix.
package cloudjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/provtrail/provtrail/collectors"
)

// MaxInput bounds what one parse reads; MaxRaw bounds an event's Raw.
const (
	MaxInput = 1 << 30
	MaxRaw   = 64 << 10
)

// Records calls fn for every record in r. keys are the wrapper keys whose
// array holds the records. where is "name:N" for the Nth record (1-based),
// for problem reports. Records fn rejects and malformed input are reported
// to problems; only ctx and fn's ErrStop-wrapped errors end the walk.
func Records(ctx context.Context, r io.Reader, name string, keys []string, problems collectors.ProblemReporter,
	fn func(where string, rec json.RawMessage) error) error {
	dec := json.NewDecoder(io.LimitReader(r, MaxInput))
	n := 0
	visit := func(rec json.RawMessage) error {
		n++
		where := fmt.Sprintf("%s:%d", name, n)
		if err := fn(where, rec); err != nil {
			if errors.Is(err, ErrStop) {
				return err
			}
			Report(problems, where, err.Error(), rec)
		}
		return ctx.Err()
	}
	var walk func(v json.RawMessage, depth int) error
	walk = func(v json.RawMessage, depth int) error {
		v = bytes.TrimSpace(v)
		switch {
		case len(v) == 0:
			return nil
		case v[0] == '[':
			var arr []json.RawMessage
			if err := json.Unmarshal(v, &arr); err != nil {
				Report(problems, name, "not a JSON array: "+err.Error(), v)
				return nil
			}
			for _, rec := range arr {
				if depth < 2 && len(bytes.TrimSpace(rec)) > 0 && bytes.TrimSpace(rec)[0] == '[' {
					if err := walk(rec, depth+1); err != nil {
						return err
					}
					continue
				}
				if err := visit(rec); err != nil {
					return err
				}
			}
			return nil
		case v[0] == '{':
			if depth < 2 {
				var top map[string]json.RawMessage
				if err := json.Unmarshal(v, &top); err == nil {
					for _, k := range keys {
						if inner, ok := top[k]; ok {
							t := bytes.TrimSpace(inner)
							if len(t) > 0 && t[0] == '[' {
								return walk(inner, depth+1)
							}
							if string(t) == "null" {
								return nil
							}
						}
					}
				}
			}
			return visit(v)
		default:
			Report(problems, fmt.Sprintf("%s:%d", name, n+1), "not a JSON object", v)
			return nil
		}
	}
	for {
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			Report(problems, fmt.Sprintf("%s:%d", name, n+1), "malformed JSON: "+err.Error(), nil)
			return nil
		}
		if err := walk(v, 0); err != nil {
			return err
		}
	}
}

// ErrStop ends a Records walk early; fn wraps it (for example when Emit
// failed because the agent is stopping).
var ErrStop = errors.New("stop")

// Report sends a problem with a short sample of the record.
func Report(p collectors.ProblemReporter, where, reason string, rec []byte) {
	if p == nil {
		return
	}
	s := string(rec)
	if len(s) > 120 {
		s = s[:120]
	}
	p.Report(collectors.Problem{Where: where, Reason: reason, Sample: s})
}

// Raw returns rec as compact JSON for Event.Raw, cut to MaxRaw.
func Raw(rec []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, rec); err != nil {
		b.Reset()
		b.Write(rec)
	}
	if b.Len() > MaxRaw {
		return b.String()[:MaxRaw]
	}
	return b.String()
}

// Email returns s when it looks like an email address or UPN.
func Email(s string) string {
	if i := strings.IndexByte(s, '@'); i > 0 && i < len(s)-1 && !strings.ContainsAny(s, " /:") {
		return s
	}
	return ""
}
