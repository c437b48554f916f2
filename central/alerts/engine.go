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
	"github.com/hashicorp/hcl/v2/hclsyntax"
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
// restarts. SaveAlertState must not retain state after it returns.
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
	// SaveInterval is how often changed rule state is written to State;
	// zero means DefaultSaveInterval. State is also written when an
	// evaluation raised an alert, and by Close.
	SaveInterval time.Duration
}

// DefaultSaveInterval bounds how much evaluation a crash undoes: the
// saved watermark (EvaluateThrough) is at most this old, and central
// evaluates what came after it again at the next start.
const DefaultSaveInterval = time.Second

// Engine evaluates rules and delivers alerts. It is safe for concurrent use.
type Engine struct {
	rules     []*Rule
	comp      []*compiled
	need      fieldTree
	byAction  map[string][]*compiled
	anyAction []*compiled
	evalCtx   *hcl.EvalContext
	sink      Sink
	stateDB   StateStore
	log       *slog.Logger
	now       func() time.Time
	notifiers map[string]*dispatcher
	metrics   engineMetrics
	saveEvery time.Duration
	closeOnce sync.Once
	stopFlush chan struct{}
	flushDone chan struct{}

	// saveMu serialises state writes, so that a later snapshot is never
	// overwritten by an earlier one; it is taken before mu.
	saveMu   sync.Mutex
	stateBuf []byte     // guarded by saveMu
	mu       sync.Mutex // guards everything below and compiled windows
	// through is the caller's watermark (central: the last batch id whose
	// events were evaluated), saved with the windows it produced.
	through  *int64
	dirty    bool
	lastSave time.Time
	keyBuf   []byte
	// slow evaluates every rule for every event, conditions and keys as
	// HCL: the reference the fast paths are tested against.
	slow bool
}

// compiled is a rule prepared for evaluation.
type compiled struct {
	r *Rule
	g ruleGuards
	// key reads the group_by (or sequence same) values from the event's
	// fields when each is a reference to the action or a guard field;
	// keyHCL means evaluating them as HCL instead. keyNames: a key field
	// is a name, which the index may hold as an id.
	key      []func(*Fields) string
	keyHCL   bool
	keyNames bool
	within   time.Duration
	// win holds, per key, the matching events still inside the threshold
	// window, or the pending first events of a sequence. newest is the
	// newest event time win has seen. Guarded by Engine.mu.
	win    map[string]*refList
	newest time.Time
	// n counts evaluations not yet added to evaluated.
	n         int
	evaluated prometheus.Counter
}

// refList is one key's window. enc is refs as saved, valid while encOK:
// a save encodes only the keys that changed since the last one.
type refList struct {
	refs  []EventRef
	enc   []byte
	encOK bool
}

// engineState is the saved form of the rule state.
type engineState struct {
	Windows map[string]map[string][]EventRef `json:"windows"`
	Through *int64                           `json:"through,omitempty"`
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
		byAction:  map[string][]*compiled{},
		evalCtx:   ruleContext(parent, cfg.Vars),
		sink:      opts.Sink,
		stateDB:   opts.State,
		log:       opts.Logger,
		now:       opts.Now,
		notifiers: map[string]*dispatcher{},
		saveEvery: opts.SaveInterval,
		lastSave:  time.Now(),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.saveEvery <= 0 {
		e.saveEvery = DefaultSaveInterval
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
	cc := consts(e.evalCtx)
	for _, r := range cfg.Rules {
		c := &compiled{r: r, g: newRuleGuards(r, cc), win: map[string]*refList{},
			evaluated: e.metrics.evaluated.WithLabelValues(r.Name)}
		switch {
		case r.Threshold != nil:
			c.within = r.Threshold.Within
			c.key, c.keyNames, c.keyHCL = fieldKey(r.GroupBy)
		case r.Sequence != nil:
			c.within = r.Sequence.Within
			c.key, c.keyNames, c.keyHCL = fieldKey(r.Sequence.Same)
		default:
			c.key, c.keyNames, c.keyHCL = fieldKey(r.GroupBy)
		}
		e.comp = append(e.comp, c)
		if r.actions == nil {
			e.anyAction = append(e.anyAction, c)
			continue
		}
		for a := range r.actions {
			e.byAction[a] = append(e.byAction[a], c)
		}
	}
	// Each action's list holds the rules for any action too, in
	// configuration order (the order alerts for one event are raised in).
	for a, cs := range e.byAction {
		e.byAction[a] = inOrder(e.comp, cs, e.anyAction)
	}
	if e.stateDB != nil {
		b, err := e.stateDB.LoadAlertState(ctx)
		if err != nil {
			return nil, fmt.Errorf("load alert state: %w", err)
		}
		if len(b) > 0 {
			var st engineState
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("decode alert state: %w", err)
			}
			e.through = st.Through
			// Windows of rules no longer configured are dropped.
			for _, c := range e.comp {
				for k, refs := range st.Windows[c.r.Name] {
					if len(refs) == 0 {
						continue
					}
					c.win[k] = &refList{refs: refs}
					for _, ref := range refs {
						if ref.Time.After(c.newest) {
							c.newest = ref.Time
						}
					}
				}
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
	if e.stateDB != nil {
		e.stopFlush, e.flushDone = make(chan struct{}), make(chan struct{})
		go e.flushLoop()
	}
	return e, nil
}

// inOrder returns the rules of all that are in a or b, in all's order.
func inOrder(all, a, b []*compiled) []*compiled {
	in := map[*compiled]bool{}
	for _, c := range a {
		in[c] = true
	}
	for _, c := range b {
		in[c] = true
	}
	var out []*compiled
	for _, c := range all {
		if in[c] {
			out = append(out, c)
		}
	}
	return out
}

// fieldKey returns getters for key expressions that are each a reference
// to the action or a guard field, and whether one of them is a name; or
// useHCL true when some expression must be evaluated as HCL.
func fieldKey(exprs []hcl.Expression) (get []func(*Fields) string, names, useHCL bool) {
	for _, x := range exprs {
		sx, ok := x.(hclsyntax.Expression)
		if !ok {
			return nil, false, true
		}
		if isActionRef(sx) {
			get = append(get, func(f *Fields) string { return f.Action })
			continue
		}
		found := false
		for _, gf := range guardFields {
			if isFieldRef(sx, gf.path) {
				get, names, found = append(get, gf.get), names || gf.name, true
				break
			}
		}
		if !found {
			return nil, false, true
		}
	}
	return get, names, false
}

// Close writes changed rule state and stops the notifier workers after
// they deliver what is queued, or give up on it.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		if e.stopFlush != nil {
			close(e.stopFlush)
			<-e.flushDone
			if err := e.save(context.Background()); err != nil {
				e.log.Error("save alert state", "err", err)
			}
		}
		for _, d := range e.notifiers {
			d.stop()
		}
	})
}

// flushLoop writes changed state every save interval, so that it is
// saved even when no more events come.
func (e *Engine) flushLoop() {
	defer close(e.flushDone)
	tick := time.NewTicker(e.saveEvery)
	defer tick.Stop()
	for {
		select {
		case <-e.stopFlush:
			return
		case <-tick.C:
			if err := e.save(context.Background()); err != nil {
				e.log.Warn("save alert state", "err", err)
			}
		}
	}
}

// Evaluate runs every rule over events, in order, raising alerts as they
// fire. Call it after the events are stored.
func (e *Engine) Evaluate(ctx context.Context, events []Indexed) error {
	return e.evaluate(ctx, len(events), func(i int, in *input) { in.setDecoded(events[i]) }, nil)
}

// EvaluateThrough is Evaluate that also records the caller's watermark
// through (for example the last batch the events came from) in the saved
// state, with the windows the events changed, so that after a crash the
// caller resumes exactly after what the saved windows reflect. State is
// saved every save interval (Options.SaveInterval), when an alert fired,
// and by Close.
func (e *Engine) EvaluateThrough(ctx context.Context, events []Indexed, through int64) error {
	return e.evaluate(ctx, len(events), func(i int, in *input) { in.setDecoded(events[i]) }, &through)
}

// Through returns the watermark of the last EvaluateThrough or
// EvaluateStored (at start: the saved one), and false when there is none.
func (e *Engine) Through() (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.through == nil {
		return 0, false
	}
	return *e.through, true
}

type firedAlert struct {
	a      Alert
	notify []string
}

func (e *Engine) evaluate(ctx context.Context, n int, fill func(int, *input), through *int64) error {
	var fired []firedAlert
	e.mu.Lock()
	var in input
	for i := range n {
		in = input{}
		fill(i, &in)
		e.evalEvent(&in, &fired)
	}
	for _, c := range e.comp {
		if c.n > 0 {
			c.evaluated.Add(float64(c.n))
			c.n = 0
		}
	}
	first := false
	if through != nil {
		// The first watermark is written at once: until it is, a restart
		// would start the rules at the end of the index again.
		first = e.through == nil
		e.through = through
		e.dirty = true
	}
	e.mu.Unlock()
	var errs []error
	// Alerts are stored before the state that says their events were
	// evaluated, so a crash in between raises them again (same ids),
	// never loses them.
	for _, f := range fired {
		errs = append(errs, e.emit(ctx, f.a, f.notify))
	}
	// Otherwise the flusher writes the state, off the caller's goroutine.
	if first || len(fired) > 0 || (e.stateDB == nil && time.Since(e.lastSaveTime()) >= e.saveEvery) {
		errs = append(errs, e.save(ctx))
	}
	return errors.Join(errs...)
}

func (e *Engine) lastSaveTime() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastSave
}

// save writes the state when it changed since it was last written.
func (e *Engine) save(ctx context.Context) error {
	if e.stateDB == nil {
		// Nothing to write, but windows still must not grow forever.
		e.mu.Lock()
		e.prune()
		e.lastSave = time.Now()
		e.mu.Unlock()
		return nil
	}
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	e.mu.Lock()
	if !e.dirty {
		e.mu.Unlock()
		return nil
	}
	e.prune()
	b, err := appendWindows(e.stateBuf[:0], e.comp, e.through)
	if err != nil {
		e.mu.Unlock()
		return fmt.Errorf("encode alert state: %w", err)
	}
	e.dirty, e.lastSave, e.stateBuf = false, time.Now(), b
	e.mu.Unlock()
	if err := e.stateDB.SaveAlertState(ctx, b); err != nil {
		e.mu.Lock()
		e.dirty = true
		e.mu.Unlock()
		return fmt.Errorf("save alert state: %w", err)
	}
	return nil
}

// evalEvent runs the rules that may match one event. Callers hold e.mu.
func (e *Engine) evalEvent(in *input, fired *[]firedAlert) {
	rules, ok := e.byAction[in.index.Action]
	if !ok {
		rules = e.anyAction
	}
	if e.slow {
		rules = e.comp
	}
	for _, c := range rules {
		// The guards are necessary conditions, on the index fields too.
		if !e.slow && !c.g.wants(c.r, &in.index) {
			continue
		}
		c.n++
		a, changed, err := e.evalRule(c, in)
		if err != nil {
			// An event that does not decode fails every rule that needs
			// it: one warning.
			if err != in.err || !in.warned {
				e.log.Warn("alert rule failed to evaluate", "rule", c.r.Name, "event", in.ref.ID, "err", err)
			}
			in.warned = in.warned || err == in.err
			continue
		}
		if changed {
			e.dirty = true
		}
		if a != nil {
			*fired = append(*fired, firedAlert{*a, c.r.Notify})
		}
	}
}

// evalRule returns the alert c fires for the event, if any, and whether
// the engine's state changed. Callers hold e.mu.
func (e *Engine) evalRule(c *compiled, in *input) (*Alert, bool, error) {
	r := c.r
	if r.Sequence != nil {
		return e.evalSequence(c, in)
	}
	ok, err := e.cond(r.When, c.g.when, c.g.whenExact, in)
	if err != nil || !ok {
		return nil, false, err
	}
	if err := e.key(c, r.GroupBy, in); err != nil {
		return nil, false, err
	}
	ref := in.ref
	if r.Threshold == nil {
		key := string(e.keyBuf)
		return e.newAlert(r, key, []EventRef{ref}, fmt.Sprintf("%s: %s", r.Name, key)), false, nil
	}
	w := c.win[string(e.keyBuf)]
	if w == nil {
		w = &refList{}
		c.win[string(e.keyBuf)] = w
	}
	if ref.Time.After(c.newest) {
		c.newest = ref.Time
	}
	w.refs, w.encOK = append(w.refs, ref), false
	cutoff := ref.Time.Add(-r.Threshold.Within)
	i := 0
	for i < len(w.refs) && w.refs[i].Time.Before(cutoff) {
		i++
	}
	w.refs = w.refs[i:]
	if len(w.refs) >= r.Threshold.Count {
		key := string(e.keyBuf)
		delete(c.win, key)
		return e.newAlert(r, key, w.refs, fmt.Sprintf("%s: %d matching events within %s for %s", r.Name, len(w.refs), r.Threshold.Within, key)), true, nil
	}
	return nil, true, nil
}

// cond evaluates a condition: by its guards when they are exact (the
// caller has matched the rule's actions), else as HCL.
func (e *Engine) cond(expr hcl.Expression, gs []guard, exact bool, in *input) (bool, error) {
	if !exact || e.slow {
		ctx, err := e.hclContext(in)
		if err != nil {
			return false, err
		}
		return evalBool(expr, ctx)
	}
	if !testsNames(gs) {
		// Outside names the index fields are the event's.
		return passes(gs, &in.index), nil
	}
	f, err := e.names(in)
	if err != nil {
		return false, err
	}
	return passes(gs, f), nil
}

// key leaves the key of exprs for the event in e.keyBuf.
func (e *Engine) key(c *compiled, exprs []hcl.Expression, in *input) error {
	e.keyBuf = e.keyBuf[:0]
	if len(exprs) == 0 {
		return nil
	}
	if c.keyHCL || e.slow {
		ctx, err := e.hclContext(in)
		if err != nil {
			return err
		}
		k, err := evalKey(exprs, ctx)
		e.keyBuf = append(e.keyBuf, k...)
		return err
	}
	f := &in.index
	if c.keyNames {
		var err error
		if f, err = e.names(in); err != nil {
			return err
		}
	}
	for i, get := range c.key {
		if i > 0 {
			e.keyBuf = append(e.keyBuf, '|')
		}
		e.keyBuf = append(e.keyBuf, get(f)...)
	}
	return nil
}

func (e *Engine) evalSequence(c *compiled, in *input) (*Alert, bool, error) {
	r := c.r
	s := r.Sequence
	// An event that is neither a first nor a then changes nothing; the
	// guards of each tell most events apart without evaluating it.
	isFirst, err := e.seqCond(s.First, c.g.first, c.g.firstExact, s.firstActs, in)
	if err != nil {
		return nil, false, err
	}
	isThen, err := e.seqCond(s.Then, c.g.then, c.g.thenExact, s.thenActs, in)
	if err != nil {
		return nil, false, err
	}
	if !isFirst && !isThen {
		return nil, false, nil
	}
	if err := e.key(c, s.Same, in); err != nil {
		return nil, false, err
	}
	ref := in.ref
	if ref.Time.After(c.newest) {
		c.newest = ref.Time
	}
	if isThen {
		if w := c.win[string(e.keyBuf)]; w != nil {
			cutoff := ref.Time.Add(-s.Within)
			for i, first := range w.refs {
				if first.Time.Before(cutoff) || first.ID == ref.ID || first.Time.After(ref.Time) {
					continue
				}
				key := string(e.keyBuf)
				w.refs, w.encOK = append(w.refs[:i], w.refs[i+1:]...), false
				if len(w.refs) == 0 {
					delete(c.win, key)
				}
				return e.newAlert(r, key, []EventRef{first, ref}, fmt.Sprintf("%s: followed within %s for %s", r.Name, s.Within, key)), true, nil
			}
		}
	}
	if isFirst {
		w := c.win[string(e.keyBuf)]
		if w == nil {
			w = &refList{}
			c.win[string(e.keyBuf)] = w
		}
		w.refs, w.encOK = append(w.refs, ref), false
		return nil, true, nil
	}
	return nil, false, nil
}

// seqCond evaluates a sequence's first or then condition; acts are the
// actions it can match (nil: any), which the rule's candidates do not
// narrow to this condition alone.
func (e *Engine) seqCond(expr hcl.Expression, gs []guard, exact bool, acts map[string]bool, in *input) (bool, error) {
	if !e.slow && ((acts != nil && !acts[in.index.Action]) || !passes(gs, &in.index)) {
		return false, nil
	}
	return e.cond(expr, gs, exact, in)
}

// prune drops window entries older than their rule's window, measured from
// the newest event the rule has seen, so state stays bounded. Callers hold
// e.mu.
func (e *Engine) prune() {
	for _, c := range e.comp {
		if c.within == 0 {
			continue
		}
		cutoff := c.newest.Add(-c.within)
		for k, w := range c.win {
			if !w.refs[0].Time.Before(cutoff) {
				// Windows are appended to in time order: nothing to drop.
				continue
			}
			kept := w.refs[:0]
			for _, ref := range w.refs {
				if !ref.Time.Before(cutoff) {
					kept = append(kept, ref)
				}
			}
			if len(kept) == 0 {
				delete(c.win, k)
				continue
			}
			w.refs, w.encOK = kept, false
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
	if e.log.Enabled(ctx, slog.LevelWarn) {
		e.log.Warn("alert", "rule", a.Rule, "severity", a.Severity, "summary", a.Summary, "alert_id", a.ID)
	}
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
