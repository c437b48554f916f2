package window

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// Defaults shared by the sources; each source may pick its own.
const (
	DefaultSettleLag      = 15 * time.Minute
	DefaultOverlap        = 30 * time.Minute
	DefaultMaxWindow      = time.Hour
	DefaultPollInterval   = time.Minute
	DefaultRescanInterval = time.Hour
	DefaultRescanLookback = 24 * time.Hour
	// DefaultProgressEvery spaces backfill progress lines.
	DefaultProgressEvery = 30 * time.Second
)

// Config is the reading discipline of one collector instance.
type Config struct {
	// SettleLag is how long before now a window must end: events are
	// given that long to become visible in the provider's API.
	SettleLag time.Duration
	// Overlap is how far each main window reaches back into the previous
	// one, for events that became visible after it was read.
	Overlap time.Duration
	// MaxWindow bounds one window (backfills are read in windows of this
	// size, so progress is committed as they go).
	MaxWindow time.Duration
	// PollInterval is the shortest main window, and so how often the
	// source is polled once caught up.
	PollInterval time.Duration
	// RescanInterval is how often the last RescanLookback is read again
	// (0: never).
	RescanInterval time.Duration
	RescanLookback time.Duration
	// BackfillSince is where a first start begins reading. Zero: now minus
	// the settle lag (no backfill).
	BackfillSince time.Time
	// ProgressEvery spaces the backfill progress lines.
	ProgressEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxWindow <= 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	return c
}

// Page is one page of a window as a source read it: the provisioning
// events it maps to (ids set with event.NewID from the provider's event
// id), in the provider's order, and the token of the next page ("" after
// the last page).
type Page struct {
	Events []event.Event
	Next   string
}

// Fetcher reads one page of a window. page is "" for the first page, else
// a token a previous Fetch of the same window returned. Errors the provider
// caused are retried by the Engine with backoff; a rejected page token
// should wrap ErrPageToken, so the window is read again from its start.
type Fetcher interface {
	Fetch(ctx context.Context, w Window, page string) (Page, error)
}

// FetchFunc adapts a function to Fetcher.
type FetchFunc func(ctx context.Context, w Window, page string) (Page, error)

// Fetch calls f.
func (f FetchFunc) Fetch(ctx context.Context, w Window, page string) (Page, error) {
	return f(ctx, w, page)
}

// Stats counts what an Engine did. Safe for concurrent reads.
type Stats struct {
	Emitted    atomic.Int64
	Duplicates atomic.Int64
	Pages      atomic.Int64
	Windows    atomic.Int64
	Errors     atomic.Int64
}

// Engine runs a Fetcher in closed, overlapping windows with re-scans and
// de-duplication (see the package documentation for the guarantees).
type Engine struct {
	Config   Config
	Fetcher  Fetcher
	Clock    Clock
	StateDir string
	// Name labels log lines ("okta/main").
	Name     string
	Logger   *slog.Logger
	Problems collectors.ProblemReporter
	Stats    Stats
}

// Run reads from start until ctx is done (see collectors.Collector).
func (e *Engine) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	cfg := e.Config.withDefaults()
	log := e.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := e.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	st, err := ParsePosition(start)
	if err != nil {
		report(e.Problems, "position", err.Error(), sample(start))
		log.Warn("ignoring unreadable position; starting as on a first start", "collector", e.Name, "error", err)
		st = State{}
	}
	store, mark, err := OpenStore(e.StateDir, st.Seq, e.Problems)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name, err)
	}
	defer store.Close()
	if mark != nil {
		seq := st.Seq
		st = *mark
		st.Seq = seq
	}
	if st.Origin.IsZero() {
		now := clock.Now()
		st.Origin = now.Add(-cfg.SettleLag)
		if !cfg.BackfillSince.IsZero() && cfg.BackfillSince.Before(st.Origin) {
			st.Origin = cfg.BackfillSince
		}
		st.Origin = st.Origin.UTC()
		st.Cursor = st.Origin
		st.LastRescan = now.UTC()
		log.Info("first start", "collector", e.Name, "from", st.Origin)
	}
	r := &run{e: e, cfg: cfg, log: log, clock: clock, store: store, out: out, st: st}
	return r.loop(ctx)
}

type run struct {
	e        *Engine
	cfg      Config
	log      *slog.Logger
	clock    Clock
	store    *Store
	out      collectors.Emitter
	st       State
	failures int
	lastLine time.Time
	caughtUp bool
	// marks counts progress marks; syncedSeq is Seq at the last synced one.
	marks     int
	syncedSeq uint64
}

func (r *run) loop(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := r.clock.Now()
		r.prune(now)
		switch {
		case r.st.Win != nil:
			if err := r.drain(ctx); err != nil {
				return err
			}
		case r.st.Rescan != nil:
			to := r.st.Rescan.From.Add(r.cfg.MaxWindow)
			if to.After(r.st.Rescan.To) {
				to = r.st.Rescan.To
			}
			r.st.Win = &Window{Span: Span{From: r.st.Rescan.From, To: to}, Rescan: true}
			r.st.Page = ""
		case r.cfg.RescanInterval > 0 && now.Sub(r.st.LastRescan) >= r.cfg.RescanInterval:
			from := now.Add(-r.cfg.RescanLookback)
			if from.Before(r.st.Origin) {
				from = r.st.Origin
			}
			to := r.st.Cursor.Add(-r.cfg.Overlap)
			r.st.LastRescan = now.UTC()
			if to.After(from) {
				r.st.Rescan = &Span{From: from.UTC(), To: to.UTC()}
				r.log.Info("re-scanning the recent past for late events", "collector", r.e.Name, "span", r.st.Rescan.String())
			}
			if err := r.mark(ctx); err != nil {
				return err
			}
		default:
			closeAt := now.Add(-r.cfg.SettleLag)
			if short := r.cfg.PollInterval - closeAt.Sub(r.st.Cursor); short > 0 {
				if err := r.clock.Sleep(ctx, short); err != nil {
					return err
				}
				continue
			}
			to := r.st.Cursor.Add(r.cfg.MaxWindow)
			if to.After(closeAt) {
				to = closeAt
			}
			from := r.st.Cursor.Add(-r.cfg.Overlap)
			if from.Before(r.st.Origin) {
				from = r.st.Origin
			}
			r.st.Win = &Window{Span: Span{From: from.UTC(), To: to.UTC()}}
			r.st.Page = ""
		}
	}
}

// prune lets the store forget ids that no window can reach any more.
func (r *run) prune(now time.Time) {
	oldest := r.st.Cursor.Add(-r.cfg.Overlap)
	if r.cfg.RescanInterval > 0 {
		if t := now.Add(-r.cfg.RescanLookback); t.Before(oldest) {
			oldest = t
		}
	}
	if r.st.Rescan != nil && r.st.Rescan.From.Before(oldest) {
		oldest = r.st.Rescan.From
	}
	if r.st.Win != nil && r.st.Win.From.Before(oldest) {
		oldest = r.st.Win.From
	}
	// Slack for a restart from a position a little behind the newest.
	r.store.PruneBefore(oldest.Add(-r.cfg.MaxWindow - time.Hour))
}

// drain reads every page of the current window, then moves the state past
// it and writes a progress mark.
func (r *run) drain(ctx context.Context) error {
	w := *r.st.Win
	page := r.st.Page
	for {
		p, err := r.e.Fetcher.Fetch(ctx, w, page)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.e.Stats.Errors.Add(1)
			if errors.Is(err, ErrPageToken) && page != "" {
				r.log.Warn("page token rejected; reading the window again from its start",
					"collector", r.e.Name, "window", w.String(), "error", err)
				page, r.st.Page = "", ""
				if r.failures > 0 {
					if err := r.backoff(ctx, w, err); err != nil {
						return err
					}
				}
				r.failures++
				continue
			}
			if err := r.backoff(ctx, w, err); err != nil {
				return err
			}
			continue
		}
		r.failures = 0
		r.e.Stats.Pages.Add(1)
		if err := r.emit(ctx, w, page, p.Events); err != nil {
			return err
		}
		if p.Next == "" {
			break
		}
		if p.Next == page {
			report(r.e.Problems, fmt.Sprintf("%s window %s", r.e.Name, w.String()), "provider returned the same page token again; ending the window", "")
			break
		}
		page = p.Next
		r.st.Page = page
	}
	if w.Rescan {
		r.st.Rescan.From = w.To
		if !r.st.Rescan.From.Before(r.st.Rescan.To) {
			r.st.Rescan = nil
		}
	} else {
		r.st.Cursor = w.To
	}
	r.st.Win, r.st.Page = nil, ""
	r.e.Stats.Windows.Add(1)
	if err := r.mark(ctx); err != nil {
		return err
	}
	if !w.Rescan {
		r.progress()
	}
	return nil
}

// emit hands a page's new events to out, after recording their ids.
func (r *run) emit(ctx context.Context, w Window, page string, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	now := r.clock.Now().UTC()
	seq := r.st.Seq
	recs := make([]collectors.Record, 0, len(evs))
	entries := make([]Entry, 0, len(evs))
	inPage := make(map[string]bool, len(evs))
	for i := range evs {
		ev := evs[i]
		if ev.ID == "" {
			report(r.e.Problems, fmt.Sprintf("%s window %s", r.e.Name, w.String()), "event without id", string(ev.Action))
			continue
		}
		if inPage[ev.ID] || r.store.Seen(ev.ID) {
			r.e.Stats.Duplicates.Add(1)
			continue
		}
		inPage[ev.ID] = true
		if ev.ObservedTime.IsZero() {
			ev.ObservedTime = now
		}
		seq++
		st := r.st
		win := w
		st.Win, st.Page, st.Seq = &win, page, seq
		keep := ev.Time
		if keep.Before(w.From) {
			keep = w.From
		}
		entries = append(entries, Entry{ID: ev.ID, Time: keep, Seq: seq})
		recs = append(recs, collectors.Record{Event: ev, Position: st.Position()})
	}
	if len(recs) == 0 {
		return nil
	}
	for {
		err := r.store.Add(entries)
		if err == nil {
			break
		}
		if err := r.backoff(ctx, w, err); err != nil {
			return err
		}
	}
	if err := r.out.Emit(ctx, recs...); err != nil {
		return err
	}
	r.st.Seq = seq
	r.e.Stats.Emitted.Add(int64(len(recs)))
	return nil
}

func (r *run) mark(ctx context.Context) error {
	// Sync when records were emitted since the last synced mark, and on
	// every 16th mark otherwise: a quiet source costs few fsyncs.
	r.marks++
	sync := r.st.Seq != r.syncedSeq || r.marks%16 == 0
	for {
		err := r.store.Mark(r.st, sync)
		if err == nil {
			if sync {
				r.syncedSeq = r.st.Seq
			}
			return nil
		}
		if err := r.backoff(ctx, Window{}, err); err != nil {
			return err
		}
	}
}

func (r *run) backoff(ctx context.Context, w Window, cause error) error {
	wait := time.Second << min(r.failures, 8)
	wait = min(wait, 5*time.Minute)
	r.failures++
	r.log.Warn("reading failed; retrying", "collector", r.e.Name, "window", w.String(),
		"attempt", r.failures, "wait", wait, "error", cause)
	return r.clock.Sleep(ctx, wait)
}

// progress logs a line while backfilling, at most every ProgressEvery,
// and one when the backfill is done.
func (r *run) progress() {
	now := r.clock.Now()
	target := now.Add(-r.cfg.SettleLag)
	behind := target.Sub(r.st.Cursor)
	if behind <= r.cfg.MaxWindow {
		if !r.caughtUp {
			r.caughtUp = true
			r.log.Info("backfill complete; reading new events", "collector", r.e.Name,
				"cursor", r.st.Cursor, "emitted", r.e.Stats.Emitted.Load())
		}
		return
	}
	if now.Sub(r.lastLine) < r.cfg.ProgressEvery {
		return
	}
	r.lastLine = now
	total := target.Sub(r.st.Origin)
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(r.st.Cursor.Sub(r.st.Origin)) / float64(total)
	}
	r.log.Info("backfill progress", "collector", r.e.Name, "cursor", r.st.Cursor,
		"behind", behind.Round(time.Second).String(), "percent", fmt.Sprintf("%.1f", pct),
		"emitted", r.e.Stats.Emitted.Load())
}
