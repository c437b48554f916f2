// Package ldaptest holds test doubles shared by the LDAP collectors'
// tests: a recording emitter, a recording problem reporter, and a one-line
// event summary for golden files.
package ldaptest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// Sink records what a collector or parser emitted.
type Sink struct {
	mu   sync.Mutex
	recs []collectors.Record
}

// Emit records recs.
func (s *Sink) Emit(_ context.Context, recs ...collectors.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

// Records returns a copy of what was emitted.
func (s *Sink) Records() []collectors.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]collectors.Record(nil), s.recs...)
}

// Events returns the emitted events.
func (s *Sink) Events() []event.Event {
	recs := s.Records()
	out := make([]event.Event, len(recs))
	for i, r := range recs {
		out[i] = r.Event
	}
	return out
}

// Problems records reported problems.
type Problems struct {
	mu  sync.Mutex
	all []collectors.Problem
}

// Report records p.
func (p *Problems) Report(x collectors.Problem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, x)
}

// List returns what was reported.
func (p *Problems) List() []collectors.Problem {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]collectors.Problem(nil), p.all...)
}

// Summary is one line per event: action, outcome, actor, target, changes.
func Summary(e event.Event) string {
	var ch []string
	for _, c := range e.Changes {
		s := c.Field
		if c.Old != "" || c.New != "" {
			s += "(" + c.Old + "->" + c.New + ")"
		}
		ch = append(ch, s)
	}
	return fmt.Sprintf("%s %s actor=%s/%s %s [%s]", e.Action, e.Outcome, e.Actor.Name, e.Actor.Type,
		Target(e), strings.Join(ch, " "))
}

// Target names an event's target briefly.
func Target(e event.Event) string {
	var tgt []string
	if u := e.Target.User; u != nil {
		n := u.Name
		if n == "" {
			n = u.ID
		}
		tgt = append(tgt, "user="+n)
	}
	if g := e.Target.Group; g != nil {
		tgt = append(tgt, "group="+g.Name)
	}
	if len(e.Target.Privileges) > 0 {
		tgt = append(tgt, "priv="+strings.Join(e.Target.Privileges, ";"))
	}
	return strings.Join(tgt, " ")
}
