package alerts

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Rule is one alert block.
type Rule struct {
	Name     string
	Severity string
	Notify   []string
	// When is nil for sequence rules.
	When      hcl.Expression
	GroupBy   []hcl.Expression
	Threshold *Threshold
	Sequence  *Sequence
	// actions, when non-nil, is every action the rule can match; other
	// events skip evaluation.
	actions  map[string]bool
	defRange hcl.Range
}

// Threshold fires when Count matching events share a group_by key within
// Within.
type Threshold struct {
	Count  int
	Within time.Duration
}

// Sequence fires when an event matching Then follows one matching First
// with equal Same values within Within.
type Sequence struct {
	First, Then hcl.Expression
	Same        []hcl.Expression
	Within      time.Duration
	firstActs   map[string]bool
	thenActs    map[string]bool
}

// Config is the alerting part of central.hcl.
type Config struct {
	Rules     []*Rule
	Notifiers []NotifierConfig
	// Vars are the `variables` block's attributes, visible as var.NAME.
	Vars map[string]cty.Value
}

type alertBlock struct {
	When      hcl.Expression `hcl:"when,optional"`
	Severity  *string        `hcl:"severity,optional"`
	Notify    []string       `hcl:"notify,optional"`
	GroupBy   hcl.Expression `hcl:"group_by,optional"`
	Threshold *struct {
		Count  int            `hcl:"count"`
		Within hcl.Expression `hcl:"within"`
	} `hcl:"threshold,block"`
	Sequence *struct {
		First  hcl.Expression `hcl:"first"`
		Then   hcl.Expression `hcl:"then"`
		Same   hcl.Expression `hcl:"same,optional"`
		Within hcl.Expression `hcl:"within"`
	} `hcl:"sequence,block"`
}

// Functions is HCL's standard function library as rules see it.
func Functions() map[string]function.Function {
	return map[string]function.Function{
		"contains": stdlib.ContainsFunc, "length": stdlib.LengthFunc, "lower": stdlib.LowerFunc,
		"upper": stdlib.UpperFunc, "trimprefix": stdlib.TrimPrefixFunc, "trimsuffix": stdlib.TrimSuffixFunc,
		"regexall": stdlib.RegexAllFunc, "strlen": stdlib.StrlenFunc, "formatdate": stdlib.FormatDateFunc, "regex": stdlib.RegexFunc, "can": tryfunc.CanFunc, "try": tryfunc.TryFunc,
		"split": stdlib.SplitFunc, "join": stdlib.JoinFunc, "concat": stdlib.ConcatFunc,
		"coalesce": stdlib.CoalesceFunc, "trimspace": stdlib.TrimSpaceFunc, "replace": stdlib.ReplaceFunc,
		"substr": stdlib.SubstrFunc, "abs": stdlib.AbsoluteFunc, "max": stdlib.MaxFunc, "min": stdlib.MinFunc,
		"setunion": stdlib.SetUnionFunc, "setintersection": stdlib.SetIntersectionFunc,
		"format": stdlib.FormatFunc, "keys": stdlib.KeysFunc, "lookup": stdlib.LookupFunc,
	}
}

// DecodeConfig decodes the alert, notifier and variables blocks of
// central.hcl. ctx supplies env() and file().
func DecodeConfig(blocks hcl.Blocks, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	cfg := &Config{Vars: map[string]cty.Value{}}
	var diags hcl.Diagnostics
	for _, b := range blocks {
		if b.Type != "variables" {
			continue
		}
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for name, a := range attrs {
			v, d := a.Expr.Value(ctx)
			diags = append(diags, d...)
			cfg.Vars[name] = v
		}
	}
	evalCtx := ruleContext(ctx, cfg.Vars)
	names := map[string]hcl.Range{}
	for _, b := range blocks {
		switch b.Type {
		case "notifier":
			n, d := decodeNotifier(b, ctx)
			diags = append(diags, d...)
			if n != nil {
				key := n.Name
				if prev, dup := names["notifier:"+key]; dup {
					diags = append(diags, hclconfig.Error(b.LabelRanges[1], "Duplicate notifier", fmt.Sprintf("notifier %q is already defined at %s.", key, prev)))
					continue
				}
				names["notifier:"+key] = b.DefRange
				cfg.Notifiers = append(cfg.Notifiers, *n)
			}
		case "alert":
			r, d := decodeRule(b, evalCtx)
			diags = append(diags, d...)
			if r != nil {
				if prev, dup := names["alert:"+r.Name]; dup {
					diags = append(diags, hclconfig.Error(b.LabelRanges[0], "Duplicate alert", fmt.Sprintf("alert %q is already defined at %s.", r.Name, prev)))
					continue
				}
				names["alert:"+r.Name] = b.DefRange
				cfg.Rules = append(cfg.Rules, r)
			}
		}
	}
	for _, r := range cfg.Rules {
		for _, n := range r.Notify {
			if _, ok := names["notifier:"+n]; !ok {
				diags = append(diags, hclconfig.Error(r.defRange, "Unknown notifier",
					fmt.Sprintf("alert %q notifies %q, which no notifier block defines.", r.Name, n)))
			}
		}
	}
	return cfg, diags
}

func decodeRule(b *hcl.Block, ctx *hcl.EvalContext) (*Rule, hcl.Diagnostics) {
	var ab alertBlock
	diags := gohcl.DecodeBody(b.Body, nil, &ab)
	if diags.HasErrors() {
		return nil, diags
	}
	r := &Rule{Name: b.Labels[0], Severity: "medium", Notify: ab.Notify, defRange: b.DefRange}
	if ab.Severity != nil {
		r.Severity = *ab.Severity
	}
	switch r.Severity {
	case "info", "low", "medium", "high", "critical":
	default:
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid severity",
			fmt.Sprintf("alert %q: severity %q is not info, low, medium, high or critical.", r.Name, r.Severity)))
	}
	hasWhen := !isNull(ab.When)
	switch {
	case ab.Sequence != nil && hasWhen:
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid alert", "A sequence rule has first/then instead of when."))
	case ab.Sequence == nil && !hasWhen:
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid alert", "An alert needs a when condition or a sequence block."))
	case ab.Sequence != nil && ab.Threshold != nil:
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid alert", "An alert has either a threshold or a sequence, not both."))
	}
	if hasWhen {
		r.When = ab.When
		diags = append(diags, checkExpr(ab.When, ctx)...)
		r.actions = possibleActions(ab.When, consts(ctx))
	}
	if !isNull(ab.GroupBy) {
		exprs, d := listExprs(ab.GroupBy)
		diags = append(diags, d...)
		for _, e := range exprs {
			diags = append(diags, checkExpr(e, ctx)...)
		}
		r.GroupBy = exprs
	}
	if t := ab.Threshold; t != nil {
		within, d := hclconfig.Duration(t.Within, ctx, 0)
		diags = append(diags, d...)
		if t.Count < 1 || within <= 0 {
			diags = append(diags, hclconfig.Error(b.DefRange, "Invalid threshold", "threshold needs count >= 1 and a positive within."))
		}
		r.Threshold = &Threshold{Count: t.Count, Within: within}
	}
	if s := ab.Sequence; s != nil {
		within, d := hclconfig.Duration(s.Within, ctx, 0)
		diags = append(diags, d...)
		if within <= 0 {
			diags = append(diags, hclconfig.Error(b.DefRange, "Invalid sequence", "sequence needs a positive within."))
		}
		seq := &Sequence{First: s.First, Then: s.Then, Within: within,
			firstActs: possibleActions(s.First, consts(ctx)), thenActs: possibleActions(s.Then, consts(ctx))}
		diags = append(diags, checkExpr(s.First, ctx)...)
		diags = append(diags, checkExpr(s.Then, ctx)...)
		if !isNull(s.Same) {
			exprs, d := listExprs(s.Same)
			diags = append(diags, d...)
			for _, e := range exprs {
				diags = append(diags, checkExpr(e, ctx)...)
			}
			seq.Same = exprs
		}
		r.Sequence = seq
		if seq.firstActs != nil && seq.thenActs != nil {
			r.actions = map[string]bool{}
			for a := range seq.firstActs {
				r.actions[a] = true
			}
			for a := range seq.thenActs {
				r.actions[a] = true
			}
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return r, diags
}

// checkExpr evaluates expr against a sample event so that references to
// fields that do not exist, unknown functions and type errors are reported
// by validate, not at the first event.
func checkExpr(expr hcl.Expression, ctx *hcl.EvalContext) hcl.Diagnostics {
	_, diags := expr.Value(withEvent(ctx, sampleEvent(), allFields))
	return diags
}

func listExprs(expr hcl.Expression) ([]hcl.Expression, hcl.Diagnostics) {
	exprs, diags := hcl.ExprList(expr)
	if diags.HasErrors() {
		return nil, diags
	}
	return exprs, nil
}

func isNull(expr hcl.Expression) bool {
	if expr == nil {
		return true
	}
	if _, ok := expr.(hclsyntax.Expression); ok {
		return false
	}
	v, diags := expr.Value(nil)
	return !diags.HasErrors() && v.IsNull()
}

// possibleActions returns every action value expr can be true for, or nil
// when that cannot be known statically. It understands conjunctions and
// disjunctions of `event.action == "x"` and `contains([...], event.action)`,
// where the literals may be var.NAME (fixed for a configuration; cc holds
// them).
func possibleActions(expr hcl.Expression, cc *hcl.EvalContext) map[string]bool {
	return possibleValues(expr, actionPath, cc)
}

func isActionRef(expr hclsyntax.Expression) bool {
	return isFieldRef(expr, actionPath)
}

// consts is the part of a rule context that is constant for a
// configuration: var, without functions.
func consts(ctx *hcl.EvalContext) *hcl.EvalContext {
	cc := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.EmptyObjectVal}}
	if ctx != nil {
		if v, ok := ctx.Variables["var"]; ok {
			cc.Variables["var"] = v
		}
	}
	return cc
}

// literalString returns the string expr is without looking at the event
// (a literal, or a var.NAME string), as a one-element set, or nil.
func literalString(expr hclsyntax.Expression, cc *hcl.EvalContext) map[string]bool {
	v, ok := constValue(expr, cc)
	if !ok || v.Type() != cty.String {
		return nil
	}
	return map[string]bool{v.AsString(): true}
}

// literalList returns the strings of a list, tuple or set expr is without
// looking at the event (literals or var.NAME), or nil; contains() over it
// is a set membership test.
func literalList(expr hclsyntax.Expression, cc *hcl.EvalContext) map[string]bool {
	v, ok := constValue(expr, cc)
	if !ok {
		return nil
	}
	t := v.Type()
	if !t.IsListType() && !t.IsTupleType() && !t.IsSetType() {
		return nil
	}
	out := map[string]bool{}
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() || !ev.IsKnown() || ev.Type() != cty.String || ev.IsMarked() {
			return nil
		}
		out[ev.AsString()] = true
	}
	return out
}

// constValue evaluates expr when it refers to nothing but var and calls no
// function.
func constValue(expr hclsyntax.Expression, cc *hcl.EvalContext) (cty.Value, bool) {
	for _, tr := range expr.Variables() {
		if tr.RootName() != "var" || cc == nil {
			return cty.NilVal, false
		}
	}
	callsFunc := false
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		if _, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			callsFunc = true
		}
		return nil
	})
	if callsFunc {
		return cty.NilVal, false
	}
	v, diags := expr.Value(cc)
	if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() || v.IsMarked() {
		return cty.NilVal, false
	}
	return v, true
}
