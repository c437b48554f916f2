package alerts

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/event"
)

// Fields are the indexed fields of a stored event, which central has
// without decoding the event. Actor, User and Group are the name, or the
// id when the name is empty.
type Fields struct {
	Action, Outcome, Actor, User, Group, Host, System string
}

// guardFields maps the event attributes a guard can test to the Fields
// that hold them (when the attribute is set, the field equals it).
var guardFields = []struct {
	path []string
	get  func(*Fields) string
}{
	{[]string{"outcome"}, func(f *Fields) string { return f.Outcome }},
	{[]string{"actor", "name"}, func(f *Fields) string { return f.Actor }},
	{[]string{"target", "user", "name"}, func(f *Fields) string { return f.User }},
	{[]string{"target", "group", "name"}, func(f *Fields) string { return f.Group }},
	{[]string{"origin", "host"}, func(f *Fields) string { return f.Host }},
	{[]string{"origin", "system"}, func(f *Fields) string { return f.System }},
}

// guard is a necessary condition of a `when`: the field must hold one of
// values for the expression to be true.
type guard struct {
	get    func(*Fields) string
	values map[string]bool
}

// guardsOf returns the necessary conditions of expr on the guard fields,
// found the way possibleActions finds the actions: equalities with
// literals and contains() over literal lists, through && and ||.
func guardsOf(expr hcl.Expression) []guard {
	var out []guard
	for _, gf := range guardFields {
		vals := possibleValues(expr, gf.path)
		if vals == nil || vals[""] {
			// An empty literal could match an absent attribute whose field
			// holds the id instead: no guard.
			continue
		}
		out = append(out, guard{get: gf.get, values: vals})
	}
	return out
}

func passes(gs []guard, f *Fields) bool {
	for _, g := range gs {
		if !g.values[g.get(f)] {
			return false
		}
	}
	return true
}

// ruleGuards are a rule's guards: for a sequence, one set for first and
// one for then (either may let an event through). A condition that is
// exact is nothing but a conjunction of literal tests on the action and
// the guard fields: for an event of one of the rule's actions its guards
// decide it, without evaluating HCL.
type ruleGuards struct {
	when, first, then                []guard
	whenExact, firstExact, thenExact bool
}

func newRuleGuards(r *Rule) ruleGuards {
	if s := r.Sequence; s != nil {
		return ruleGuards{first: guardsOf(s.First), then: guardsOf(s.Then),
			firstExact: isExact(s.First) && guardsCover(s.First), thenExact: isExact(s.Then) && guardsCover(s.Then)}
	}
	return ruleGuards{when: guardsOf(r.When), whenExact: isExact(r.When) && guardsCover(r.When)}
}

// guardsCover reports whether every guard-field test in expr became a
// guard (guardsOf drops tests against an empty literal).
func guardsCover(expr hcl.Expression) bool {
	for _, gf := range guardFields {
		if v := possibleValues(expr, gf.path); v != nil && v[""] {
			return false
		}
	}
	return true
}

// isExact reports whether expr is a conjunction of tests of the action or
// a guard field against literals (== or contains over a literal list).
func isExact(expr hcl.Expression) bool {
	switch e := expr.(type) {
	case *hclsyntax.ParenthesesExpr:
		return isExact(e.Expression)
	case *hclsyntax.BinaryOpExpr:
		switch e.Op {
		case hclsyntax.OpLogicalAnd:
			return isExact(e.LHS) && isExact(e.RHS)
		case hclsyntax.OpEqual:
			return (isExactRef(e.LHS) && literalStrings(e.RHS) != nil) || (isExactRef(e.RHS) && literalStrings(e.LHS) != nil)
		}
	case *hclsyntax.FunctionCallExpr:
		return e.Name == "contains" && len(e.Args) == 2 && isExactRef(e.Args[1]) && literalStrings(e.Args[0]) != nil
	}
	return false
}

func isExactRef(expr hclsyntax.Expression) bool {
	if isActionRef(expr) {
		return true
	}
	for _, gf := range guardFields {
		if isFieldRef(expr, gf.path) {
			return true
		}
	}
	return false
}

// exactFields are the guard fields of a decoded event with the HCL
// event's meaning (names only, no id fallback).
func exactFields(ev *event.Event) Fields {
	f := Fields{Action: string(ev.Action), Outcome: string(ev.Outcome), Actor: ev.Actor.Name, Host: ev.Origin.Host, System: ev.Origin.System}
	if u := ev.Target.User; u != nil {
		f.User = u.Name
	}
	if g := ev.Target.Group; g != nil {
		f.Group = g.Name
	}
	return f
}

func (g ruleGuards) wants(r *Rule, f *Fields) bool {
	if r.Sequence != nil {
		return passes(g.first, f) || passes(g.then, f)
	}
	return passes(g.when, f)
}

// Wants reports whether any rule could match an event with these fields.
// Central skips decoding and evaluating the events no rule wants; a true
// answer only means the rules must be evaluated.
func (e *Engine) Wants(f *Fields) bool {
	for _, rules := range [][]*Rule{e.byAction[f.Action], e.anyAction} {
		for _, r := range rules {
			if e.guards[r].wants(r, f) {
				return true
			}
		}
	}
	return false
}

func possibleValues(expr hcl.Expression, path []string) map[string]bool {
	switch e := expr.(type) {
	case *hclsyntax.ParenthesesExpr:
		return possibleValues(e.Expression, path)
	case *hclsyntax.BinaryOpExpr:
		switch e.Op {
		case hclsyntax.OpLogicalAnd:
			l, r := possibleValues(e.LHS, path), possibleValues(e.RHS, path)
			switch {
			case l == nil:
				return r
			case r == nil:
				return l
			}
			out := map[string]bool{}
			for a := range l {
				if r[a] {
					out[a] = true
				}
			}
			return out
		case hclsyntax.OpLogicalOr:
			l, r := possibleValues(e.LHS, path), possibleValues(e.RHS, path)
			if l == nil || r == nil {
				return nil
			}
			out := map[string]bool{}
			for a := range l {
				out[a] = true
			}
			for a := range r {
				out[a] = true
			}
			return out
		case hclsyntax.OpEqual:
			if isFieldRef(e.LHS, path) {
				return literalStrings(e.RHS)
			}
			if isFieldRef(e.RHS, path) {
				return literalStrings(e.LHS)
			}
		}
	case *hclsyntax.FunctionCallExpr:
		if e.Name == "contains" && len(e.Args) == 2 && isFieldRef(e.Args[1], path) {
			return literalStrings(e.Args[0])
		}
	}
	return nil
}

func isFieldRef(expr hclsyntax.Expression, path []string) bool {
	st, ok := expr.(*hclsyntax.ScopeTraversalExpr)
	if !ok || len(st.Traversal) != len(path)+1 || st.Traversal.RootName() != "event" {
		return false
	}
	for i, name := range path {
		a, ok := st.Traversal[i+1].(hcl.TraverseAttr)
		if !ok || a.Name != name {
			return false
		}
	}
	return true
}
