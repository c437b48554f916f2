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

// actionPath is event.action, which every event has: Fields.Action.
var actionPath = []string{"action"}

// guardFields maps the event attributes a guard can test to the Fields
// that hold them. Outside names, a field equals its attribute; a name
// field (actor, user, group) of the index holds the id when the name is
// empty, so only a non-empty name equals it.
var guardFields = []struct {
	path []string
	get  func(*Fields) string
	name bool
}{
	{[]string{"outcome"}, func(f *Fields) string { return f.Outcome }, false},
	{[]string{"actor", "name"}, func(f *Fields) string { return f.Actor }, true},
	{[]string{"target", "user", "name"}, func(f *Fields) string { return f.User }, true},
	{[]string{"target", "group", "name"}, func(f *Fields) string { return f.Group }, true},
	{[]string{"origin", "host"}, func(f *Fields) string { return f.Host }, false},
	{[]string{"origin", "system"}, func(f *Fields) string { return f.System }, false},
}

// guard is a necessary condition of a `when`: the field must hold one of
// values for the expression to be true.
type guard struct {
	get    func(*Fields) string
	values map[string]bool
	// name: the field is a name, which the index may hold as an id.
	name bool
}

// guardsOf returns the necessary conditions of expr on the guard fields,
// found the way possibleActions finds the actions: equalities with
// literals and contains() over literal lists (var.NAME included), through
// && and ||.
func guardsOf(expr hcl.Expression, cc *hcl.EvalContext) []guard {
	var out []guard
	for _, gf := range guardFields {
		vals := possibleValues(expr, gf.path, cc)
		if vals == nil || vals[""] {
			// An empty literal could match an absent attribute whose field
			// holds the id instead: no guard.
			continue
		}
		out = append(out, guard{get: gf.get, values: vals, name: gf.name})
	}
	return out
}

// testsNames reports whether a guard of gs tests a name field.
func testsNames(gs []guard) bool {
	for _, g := range gs {
		if g.name {
			return true
		}
	}
	return false
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

func newRuleGuards(r *Rule, cc *hcl.EvalContext) ruleGuards {
	exact := func(x hcl.Expression) bool { return isExact(x, cc) && guardsCover(x, cc) }
	if s := r.Sequence; s != nil {
		return ruleGuards{first: guardsOf(s.First, cc), then: guardsOf(s.Then, cc),
			firstExact: exact(s.First), thenExact: exact(s.Then)}
	}
	return ruleGuards{when: guardsOf(r.When, cc), whenExact: exact(r.When)}
}

// guardsCover reports whether every guard-field test in expr became a
// guard (guardsOf drops tests against an empty literal).
func guardsCover(expr hcl.Expression, cc *hcl.EvalContext) bool {
	for _, gf := range guardFields {
		if v := possibleValues(expr, gf.path, cc); v != nil && v[""] {
			return false
		}
	}
	return true
}

// isExact reports whether expr is a conjunction of tests of the action or
// a guard field against literals (== a string, or contains over a list).
func isExact(expr hcl.Expression, cc *hcl.EvalContext) bool {
	switch e := expr.(type) {
	case *hclsyntax.ParenthesesExpr:
		return isExact(e.Expression, cc)
	case *hclsyntax.BinaryOpExpr:
		switch e.Op {
		case hclsyntax.OpLogicalAnd:
			return isExact(e.LHS, cc) && isExact(e.RHS, cc)
		case hclsyntax.OpEqual:
			return (isExactRef(e.LHS) && literalString(e.RHS, cc) != nil) || (isExactRef(e.RHS) && literalString(e.LHS, cc) != nil)
		}
	case *hclsyntax.FunctionCallExpr:
		return e.Name == "contains" && len(e.Args) == 2 && !e.ExpandFinal && isExactRef(e.Args[1]) && literalList(e.Args[0], cc) != nil
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

// wants reports whether an event with these index fields may match:
// the guards are necessary conditions, and a name the index holds
// equals the event's name whenever a guard value could.
func (g *ruleGuards) wants(r *Rule, f *Fields) bool {
	if s := r.Sequence; s != nil {
		return ((s.firstActs == nil || s.firstActs[f.Action]) && passes(g.first, f)) ||
			((s.thenActs == nil || s.thenActs[f.Action]) && passes(g.then, f))
	}
	return passes(g.when, f)
}

// Wants reports whether any rule could match an event with these index
// fields (Actor, User and Group the name, or the id when it is empty).
// A true answer only means the rules must be evaluated.
func (e *Engine) Wants(f *Fields) bool {
	rules, ok := e.byAction[f.Action]
	if !ok {
		rules = e.anyAction
	}
	for _, c := range rules {
		if c.g.wants(c.r, f) {
			return true
		}
	}
	return false
}

// possibleValues returns every value of the event attribute at path for
// which expr can be true, or nil when that cannot be known statically.
func possibleValues(expr hcl.Expression, path []string, cc *hcl.EvalContext) map[string]bool {
	switch e := expr.(type) {
	case *hclsyntax.ParenthesesExpr:
		return possibleValues(e.Expression, path, cc)
	case *hclsyntax.BinaryOpExpr:
		switch e.Op {
		case hclsyntax.OpLogicalAnd:
			l, r := possibleValues(e.LHS, path, cc), possibleValues(e.RHS, path, cc)
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
			l, r := possibleValues(e.LHS, path, cc), possibleValues(e.RHS, path, cc)
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
				return literalString(e.RHS, cc)
			}
			if isFieldRef(e.RHS, path) {
				return literalString(e.LHS, cc)
			}
		}
	case *hclsyntax.FunctionCallExpr:
		if e.Name == "contains" && len(e.Args) == 2 && !e.ExpandFinal && isFieldRef(e.Args[1], path) {
			return literalList(e.Args[0], cc)
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
