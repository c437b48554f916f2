package alerts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"

	"github.com/provtrail/provtrail/event"
)

// Names of the built-in alerts central raises.
const (
	BuiltinFork            = "builtin.fork"
	BuiltinForgedBatch     = "builtin.forged_batch"
	BuiltinGap             = "builtin.chain_gap"
	BuiltinStreamReset     = "builtin.stream_reset"
	BuiltinSilentAgent     = "builtin.silent_agent"
	BuiltinSourceGap       = "builtin.source_gap"
	BuiltinSpoolFull       = "builtin.spool_full"
	BuiltinNotifierFailing = "builtin.notifier_failing"
)

// Alert is one raised alert.
type Alert struct {
	// ID is derived from the rule, the key and the events that fired it, so
	// re-evaluating the same events after a restart raises the same alert.
	ID       string            `json:"id"`
	Rule     string            `json:"rule"`
	Builtin  bool              `json:"builtin,omitempty"`
	Severity string            `json:"severity"`
	Time     time.Time         `json:"time"`
	Summary  string            `json:"summary"`
	Key      string            `json:"key,omitempty"`
	Agent    string            `json:"agent,omitempty"`
	Events   []EventRef        `json:"events,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
}

// EventRef names an event that contributed to an alert.
type EventRef struct {
	ID       string    `json:"id"`
	LogIndex int64     `json:"log_index"`
	Time     time.Time `json:"time"`
}

// Indexed is a stored event and the transparency-log index of its batch.
type Indexed struct {
	Event    *event.Event
	LogIndex int64
}

// Sink stores raised alerts; central's store implements it.
type Sink interface {
	SaveAlert(ctx context.Context, a Alert) error
}

// StateStore keeps the engine's windows and pending sequences across
// restarts.
type StateStore interface {
	LoadAlertState(ctx context.Context) ([]byte, error)
	SaveAlertState(ctx context.Context, state []byte) error
}

// Options configure an Engine.
type Options struct {
	Sink   Sink
	State  StateStore
	Logger *slog.Logger
	// Registerer receives the engine's metrics; nil means none.
	Registerer prometheus.Registerer
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
	// Retry is the notifier retry policy; zero means DefaultRetry.
	Retry RetryPolicy
}

// Engine evaluates rules and delivers alerts. It is safe for concurrent use.
type Engine struct {
	rules     []*Rule
	need      fieldTree
	byAction  map[string][]*Rule
	anyAction []*Rule
	guards    map[*Rule]ruleGuards
	evalCtx   *hcl.EvalContext
	sink      Sink
	stateDB   StateStore
	log       *slog.Logger
	now       func() time.Time
	notifiers map[string]*dispatcher
	metrics   engineMetrics

	mu    sync.Mutex // guards state
	state engineState
}

type engineState struct {
	// Windows holds, per rule and key, the matching events still inside the
	// threshold window, or the pending first events of a sequence.
	Windows map[string]map[string][]EventRef `json:"windows"`
	// Through is the caller's watermark (central: the last batch id whose
	// events were evaluated), saved with the windows it produced.
	Through *int64 `json:"through,omitempty"`
}

type engineMetrics struct {
	evaluated, fired     *prometheus.CounterVec
	notifyFail, notifyOK *prometheus.CounterVec
}

// New builds an engine from cfg and starts its notifier workers; Close
// stops them.
func New(ctx context.Context, cfg *Config, parent *hcl.EvalContext, opts Options) (*Engine, error) {
	e := &Engine{
		rules:     cfg.Rules,
		byAction:  map[string][]*Rule{},
		evalCtx:   ruleContext(parent, cfg.Vars),
		sink:      opts.Sink,
		stateDB:   opts.State,
		log:       opts.Logger,
		now:       opts.Now,
		notifiers: map[string]*dispatcher{},
		state:     engineState{Windows: map[string]map[string][]EventRef{}},
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.metrics = engineMetrics{
		evaluated:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "provtrail_central_alert_rule_evaluations_total", Help: "Rule evaluations, by rule."}, []string{"rule"}),
		fired:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "provtrail_central_alerts_total", Help: "Alerts raised, by rule."}, []string{"rule"}),
		notifyOK:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "provtrail_central_notifications_total", Help: "Notifications delivered, by notifier."}, []string{"notifier"}),
		notifyFail: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "provtrail_central_notification_failures_total", Help: "Notification attempts that failed, by notifier."}, []string{"notifier"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{e.metrics.evaluated, e.metrics.fired, e.metrics.notifyOK, e.metrics.notifyFail} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register alert metrics: %w", err)
			}
		}
	}
	e.need = fieldTree{}
	for _, r := range cfg.Rules {
		e.need.addTraversals(r.When)
		e.need.addTraversals(r.GroupBy...)
		if s := r.Sequence; s != nil {
			e.need.addTraversals(s.First, s.Then)
			e.need.addTraversals(s.Same...)
		}
	}
	e.guards = map[*Rule]ruleGuards{}
	for _, r := range cfg.Rules {
		e.guards[r] = newRuleGuards(r)
		if r.actions == nil {
			e.anyAction = append(e.anyAction, r)
			continue
		}
		for a := range r.actions {
			e.byAction[a] = append(e.byAction[a], r)
		}
	}
	if e.stateDB != nil {
		b, err := e.stateDB.LoadAlertState(ctx)
		if err != nil {
			return nil, fmt.Errorf("load alert state: %w", err)
		}
		if len(b) > 0 {
			if err := json.Unmarshal(b, &e.state); err != nil {
				return nil, fmt.Errorf("decode alert state: %w", err)
			}
			if e.state.Windows == nil {
				e.state.Windows = map[string]map[string][]EventRef{}
			}
		}
	}
	retry := opts.Retry
	if retry.Attempts == 0 {
		retry = DefaultRetry
	}
	for _, nc := range cfg.Notifiers {
		n, err := newNotifier(nc)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("notifier %q: %w", nc.Name, err)
		}
		e.notifiers[nc.Name] = startDispatcher(nc.Name, n, retry, e)
	}
	return e, nil
}

// Close stops the notifier workers after they deliver what is queued, or
// give up on it.
func (e *Engine) Close() {
	for _, d := range e.notifiers {
		d.stop()
	}
}

// Evaluate runs every rule over events, in order, raising alerts as they
// fire. Call it after the events are stored.
func (e *Engine) Evaluate(ctx context.Context, events []Indexed) error {
	return e.evaluate(ctx, events, nil)
}

// EvaluateThrough is Evaluate that also records the caller's watermark
// through (for example the last batch the events came from) in the saved
// state, in the same write as the windows the events changed, so that
// after a crash the caller resumes exactly after what was evaluated.
func (e *Engine) EvaluateThrough(ctx context.Context, events []Indexed, through int64) error {
	return e.evaluate(ctx, events, &through)
}

// Through returns the watermark saved by EvaluateThrough, and false when
// none was ever saved.
func (e *Engine) Through() (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Through == nil {
		return 0, false
	}
	return *e.state.Through, true
}

func (e *Engine) evaluate(ctx context.Context, events []Indexed, through *int64) error {
	var fired []Alert
	changed := through != nil
	e.mu.Lock()
	for _, ix := range events {
		ev := ix.Event
		candidates := e.byAction[string(ev.Action)]
		if len(candidates) == 0 && len(e.anyAction) == 0 {
			continue
		}
		// The HCL view of the event is built only if a rule needs it.
		var evalCtx *hcl.EvalContext
		ectx := func() *hcl.EvalContext {
			if evalCtx == nil {
				evalCtx = withEvent(e.evalCtx, ev, e.need)
			}
			return evalCtx
		}
		fx := exactFields(ev)
		ref := EventRef{ID: ev.ID, LogIndex: ix.LogIndex, Time: ev.Time}
		for _, rules := range [][]*Rule{candidates, e.anyAction} {
			for _, r := range rules {
				e.metrics.evaluated.WithLabelValues(r.Name).Inc()
				a, ch, err := e.evalRule(r, ectx, &fx, ref)
				if err != nil {
					e.log.Warn("alert rule failed to evaluate", "rule", r.Name, "event", ev.ID, "err", err)
					continue
				}
				changed = changed || ch
				if a != nil {
					fired = append(fired, *a)
				}
			}
		}
	}
	if through != nil {
		e.state.Through = through
	}
	var snapshot []byte
	if changed && e.stateDB != nil {
		e.prune()
		var err error
		if snapshot, err = json.Marshal(&e.state); err != nil {
			e.mu.Unlock()
			return fmt.Errorf("encode alert state: %w", err)
		}
	}
	e.mu.Unlock()
	if snapshot != nil {
		if err := e.stateDB.SaveAlertState(ctx, snapshot); err != nil {
			return fmt.Errorf("save alert state: %w", err)
		}
	}
	var errs []error
	for _, a := range fired {
		errs = append(errs, e.emit(ctx, a, ruleNotify(e.rules, a.Rule)))
	}
	return errors.Join(errs...)
}

// evalRule returns the alert r fires for the event, if any, and whether
// the engine's state changed. Callers hold e.mu.
func (e *Engine) evalRule(r *Rule, ctx func() *hcl.EvalContext, fx *Fields, ref EventRef) (*Alert, bool, error) {
	if s := r.Sequence; s != nil {
		return e.evalSequence(r, ctx, fx, ref)
	}
	g := e.guards[r]
	ok, err := e.cond(r.When, g.when, g.whenExact, ctx, fx)
	if err != nil || !ok {
		return nil, false, err
	}
	key, err := evalKeyLazy(r.GroupBy, ctx)
	if err != nil {
		return nil, false, err
	}
	if r.Threshold == nil {
		return e.newAlert(r, key, []EventRef{ref}, fmt.Sprintf("%s: %s", r.Name, key)), false, nil
	}
	win := e.window(r.Name)
	refs := append(win[key], ref)
	cutoff := ref.Time.Add(-r.Threshold.Within)
	for len(refs) > 0 && refs[0].Time.Before(cutoff) {
		refs = refs[1:]
	}
	if len(refs) >= r.Threshold.Count {
		delete(win, key)
		return e.newAlert(r, key, refs, fmt.Sprintf("%s: %d matching events within %s for %s", r.Name, len(refs), r.Threshold.Within, key)), true, nil
	}
	win[key] = refs
	return nil, true, nil
}

// cond evaluates a condition: by its guards when they are exact (the
// caller has matched the rule's actions), else as HCL.
func (e *Engine) cond(expr hcl.Expression, gs []guard, exact bool, ctx func() *hcl.EvalContext, fx *Fields) (bool, error) {
	if exact {
		return passes(gs, fx), nil
	}
	return evalBool(expr, ctx())
}

func evalKeyLazy(exprs []hcl.Expression, ctx func() *hcl.EvalContext) (string, error) {
	if len(exprs) == 0 {
		return "", nil
	}
	return evalKey(exprs, ctx())
}

func (e *Engine) evalSequence(r *Rule, ctx func() *hcl.EvalContext, fx *Fields, ref EventRef) (*Alert, bool, error) {
	s := r.Sequence
	g := e.guards[r]
	// An event that is neither a first nor a then changes nothing.
	first, err := e.seqCond(s.First, g.first, g.firstExact, s.firstActs, ctx, fx)
	if err != nil {
		return nil, false, err
	}
	then, err := e.seqCond(s.Then, g.then, g.thenExact, s.thenActs, ctx, fx)
	if err != nil {
		return nil, false, err
	}
	if !first && !then {
		return nil, false, nil
	}
	key, err := evalKeyLazy(s.Same, ctx)
	if err != nil {
		return nil, false, err
	}
	win := e.window(r.Name)
	if then {
		pending := win[key]
		cutoff := ref.Time.Add(-s.Within)
		for i, first := range pending {
			if first.Time.Before(cutoff) || first.ID == ref.ID || first.Time.After(ref.Time) {
				continue
			}
			rest := append(append([]EventRef(nil), pending[:i]...), pending[i+1:]...)
			if len(rest) == 0 {
				delete(win, key)
			} else {
				win[key] = rest
			}
			return e.newAlert(r, key, []EventRef{first, ref}, fmt.Sprintf("%s: followed within %s for %s", r.Name, s.Within, key)), true, nil
		}
	}
	if first {
		win[key] = append(win[key], ref)
		return nil, true, nil
	}
	return nil, false, nil
}

// seqCond evaluates a sequence's first or then condition; acts are the
// actions it can match (nil: any), which the rule's candidates do not
// narrow to this condition alone.
func (e *Engine) seqCond(expr hcl.Expression, gs []guard, exact bool, acts map[string]bool, ctx func() *hcl.EvalContext, fx *Fields) (bool, error) {
	if exact {
		return (acts == nil || acts[fx.Action]) && passes(gs, fx), nil
	}
	return evalBool(expr, ctx())
}

func (e *Engine) window(rule string) map[string][]EventRef {
	w := e.state.Windows[rule]
	if w == nil {
		w = map[string][]EventRef{}
		e.state.Windows[rule] = w
	}
	return w
}

// prune drops window entries older than their rule's window, measured from
// the newest event the rule has seen, so state stays bounded.
func (e *Engine) prune() {
	for _, r := range e.rules {
		var within time.Duration
		switch {
		case r.Threshold != nil:
			within = r.Threshold.Within
		case r.Sequence != nil:
			within = r.Sequence.Within
		default:
			continue
		}
		win := e.state.Windows[r.Name]
		var newest time.Time
		for _, refs := range win {
			for _, ref := range refs {
				if ref.Time.After(newest) {
					newest = ref.Time
				}
			}
		}
		for k, refs := range win {
			if len(refs) > 0 && refs[len(refs)-1].Time.Before(newest.Add(-within)) {
				delete(win, k)
			}
		}
	}
	for name := range e.state.Windows {
		if ruleByName(e.rules, name) == nil {
			delete(e.state.Windows, name)
		}
	}
}

func (e *Engine) newAlert(r *Rule, key string, refs []EventRef, summary string) *Alert {
	h := sha256.New()
	h.Write([]byte(r.Name + "\x00" + key))
	for _, ref := range refs {
		h.Write([]byte("\x00" + ref.ID))
	}
	return &Alert{
		ID: hex.EncodeToString(h.Sum(nil)[:16]), Rule: r.Name, Severity: r.Severity,
		Time: e.now().UTC(), Summary: summary, Key: key, Events: append([]EventRef(nil), refs...),
	}
}

// Raise stores and sends a built-in alert (or any alert central makes
// itself). Built-in alerts go to every notifier.
func (e *Engine) Raise(ctx context.Context, a Alert) error {
	a.Builtin = true
	if a.Time.IsZero() {
		a.Time = e.now().UTC()
	}
	if a.ID == "" {
		h := sha256.Sum256([]byte(a.Rule + "\x00" + a.Agent + "\x00" + a.Key + "\x00" + a.Summary))
		a.ID = hex.EncodeToString(h[:16])
	}
	if a.Severity == "" {
		a.Severity = "high"
	}
	names := make([]string, 0, len(e.notifiers))
	for n := range e.notifiers {
		names = append(names, n)
	}
	return e.emit(ctx, a, names)
}

func (e *Engine) emit(ctx context.Context, a Alert, notify []string) error {
	e.metrics.fired.WithLabelValues(a.Rule).Inc()
	e.log.Warn("alert", "rule", a.Rule, "severity", a.Severity, "summary", a.Summary, "alert_id", a.ID)
	if e.sink != nil {
		if err := e.sink.SaveAlert(ctx, a); err != nil {
			return fmt.Errorf("store alert %s: %w", a.ID, err)
		}
	}
	for _, n := range notify {
		if d := e.notifiers[n]; d != nil {
			d.enqueue(a)
		}
	}
	return nil
}

func evalBool(expr hcl.Expression, ctx *hcl.EvalContext) (bool, error) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return false, diags
	}
	if v.IsNull() || !v.IsKnown() {
		return false, nil
	}
	if v.Type() != cty.Bool {
		return false, fmt.Errorf("condition is %s, not bool", v.Type().FriendlyName())
	}
	return v.True(), nil
}

func evalKey(exprs []hcl.Expression, ctx *hcl.EvalContext) (string, error) {
	if len(exprs) == 0 {
		return "", nil
	}
	parts := make([]string, len(exprs))
	for i, x := range exprs {
		v, diags := x.Value(ctx)
		if diags.HasErrors() {
			return "", diags
		}
		switch {
		case v.IsNull():
			parts[i] = ""
		case v.Type() == cty.String:
			parts[i] = v.AsString()
		default:
			parts[i] = v.GoString()
		}
	}
	return strings.Join(parts, "|"), nil
}

func ruleByName(rules []*Rule, name string) *Rule {
	for _, r := range rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func ruleNotify(rules []*Rule, name string) []string {
	if r := ruleByName(rules, name); r != nil {
		return r.Notify
	}
	return nil
}
