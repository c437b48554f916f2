package window_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/event"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeAPI is a newest-first paged API over a timeline, like CloudTrail
// LookupEvents: tokens are bound to the query and rejected otherwise.
type fakeAPI struct {
	tl       *windowtest.Timeline
	clock    *windowtest.Clock
	pageSize int
	desc     bool

	mu       sync.Mutex
	fetches  []window.Window
	failNext int  // fail this many fetches with a transient error
	badToken bool // reject the next non-empty token
	snapshot map[string][]windowtest.Item
}

func (f *fakeAPI) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fetches = append(f.fetches, w)
	if f.failNext > 0 {
		f.failNext--
		return window.Page{}, errors.New("HTTP 503: backend unavailable")
	}
	key := w.String()
	off := 0
	if page != "" {
		if f.badToken {
			f.badToken = false
			return window.Page{}, fmt.Errorf("HTTP 400: %w", window.ErrPageToken)
		}
		parts := strings.SplitN(page, "|", 2)
		if len(parts) != 2 || parts[1] != key {
			return window.Page{}, fmt.Errorf("token for another query: %w", window.ErrPageToken)
		}
		off, _ = strconv.Atoi(parts[0])
	}
	// A query's result set is fixed when its first page is read, as a
	// token-bound cursor would be.
	if f.snapshot == nil {
		f.snapshot = map[string][]windowtest.Item{}
	}
	items, ok := f.snapshot[key]
	if page == "" || !ok {
		items = f.tl.Query(w.From, w.To, f.clock.Now(), f.desc)
		f.snapshot[key] = items
	}
	end := min(off+f.pageSize, len(items))
	var p window.Page
	for _, it := range items[off:end] {
		p.Events = append(p.Events, mapItem(it))
	}
	if end < len(items) {
		p.Next = strconv.Itoa(end) + "|" + key
	}
	return p, nil
}

func mapItem(it windowtest.Item) event.Event {
	ev := event.Event{
		ID:     event.NewID("test", "tenant", it.ID),
		Time:   it.Time,
		Action: event.UserCreate,
		Target: event.Target{User: &event.User{Name: it.ID}},
		Source: event.Source{Collector: "test", EventID: it.ID},
	}
	ev.Complete()
	return ev
}

func testConfig() window.Config {
	return window.Config{
		SettleLag:      15 * time.Minute,
		Overlap:        30 * time.Minute,
		MaxWindow:      time.Hour,
		PollInterval:   5 * time.Minute,
		RescanInterval: time.Hour,
		RescanLookback: 24 * time.Hour,
	}
}

// events makes n events spread over span from t0, each visible after lag.
func events(n int, span, lag time.Duration) []windowtest.Item {
	out := make([]windowtest.Item, n)
	for i := range out {
		at := t0.Add(time.Duration(i) * span / time.Duration(n))
		out[i] = windowtest.Item{ID: fmt.Sprintf("ev-%04d", i), Time: at, VisibleAt: at.Add(lag)}
	}
	return out
}

type harness struct {
	t     *testing.T
	clock *windowtest.Clock
	api   *fakeAPI
	dir   string
	cfg   window.Config
	sink  *windowtest.Sink
	probs collectors.ProblemCounter
	log   *slog.Logger
}

func newHarness(t *testing.T, items []windowtest.Item) *harness {
	tl := &windowtest.Timeline{}
	tl.Add(items...)
	clock := windowtest.NewClock(t0)
	cfg := testConfig()
	cfg.BackfillSince = t0
	return &harness{
		t: t, clock: clock, dir: t.TempDir(), cfg: cfg, sink: &windowtest.Sink{},
		api: &fakeAPI{tl: tl, clock: clock, pageSize: 3, desc: true},
	}
}

// run runs an engine from the sink's committed position until the clock
// reaches until or the sink crashes; it reports whether it crashed.
func (h *harness) run(until time.Time) (crashed bool, eng *window.Engine) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.clock.StopAt(until, cancel)
	eng = &window.Engine{
		Config: h.cfg, Fetcher: h.api, Clock: h.clock, StateDir: h.dir,
		Name: "test", Problems: &h.probs, Logger: h.log,
	}
	err := eng.Run(ctx, h.sink.Position(), h.sink)
	switch {
	case errors.Is(err, windowtest.ErrCrash):
		return true, eng
	case errors.Is(err, context.Canceled):
		return false, eng
	default:
		h.t.Fatalf("Run: %v", err)
	}
	return false, eng
}

func ids(items []windowtest.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.ID
	}
	return out
}

func TestSteadyStateExactlyOnce(t *testing.T) {
	items := events(200, 6*time.Hour, 2*time.Minute)
	h := newHarness(t, items)
	h.run(t0.Add(8 * time.Hour))
	if err := windowtest.ExactlyOnce(h.sink.SourceIDs(), ids(items)); err != nil {
		t.Fatal(err)
	}
	if h.probs.Count() != 0 {
		t.Errorf("%d problems reported", h.probs.Count())
	}
}

func TestLateDelivery(t *testing.T) {
	items := events(50, 4*time.Hour, time.Minute)
	// Visible 25 minutes late: past the settle lag, inside the overlap.
	inOverlap := windowtest.Item{ID: "late-overlap", Time: t0.Add(90 * time.Minute), VisibleAt: t0.Add(125 * time.Minute)}
	// Visible 3 hours late: only a re-scan can find it.
	veryLate := windowtest.Item{ID: "late-rescan", Time: t0.Add(60 * time.Minute), VisibleAt: t0.Add(4 * time.Hour)}
	all := append(items, inOverlap, veryLate)

	t.Run("with rescan", func(t *testing.T) {
		h := newHarness(t, all)
		h.run(t0.Add(7 * time.Hour))
		if err := windowtest.ExactlyOnce(h.sink.SourceIDs(), ids(all)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("without rescan the very late one is lost", func(t *testing.T) {
		h := newHarness(t, all)
		h.cfg.RescanInterval = 0
		h.run(t0.Add(7 * time.Hour))
		err := windowtest.ExactlyOnce(h.sink.SourceIDs(), ids(all))
		if err == nil || !strings.Contains(err.Error(), "late-rescan lost") || strings.Contains(err.Error(), "late-overlap") {
			t.Fatalf("want only late-rescan lost, got %v", err)
		}
	})
}

func TestCrashAnywhereExactlyOnce(t *testing.T) {
	items := events(40, 3*time.Hour, 3*time.Minute)
	items = append(items, windowtest.Item{ID: "straggler", Time: t0.Add(30 * time.Minute), VisibleAt: t0.Add(3 * time.Hour)})
	for crashAt := 1; crashAt <= len(items); crashAt += 3 {
		t.Run(fmt.Sprint(crashAt), func(t *testing.T) {
			h := newHarness(t, items)
			h.sink.CrashAfter = crashAt
			crashes := 0
			for {
				crashed, _ := h.run(t0.Add(6 * time.Hour))
				if !crashed {
					break
				}
				crashes++
				if crashes == 1 {
					// Crash again a few records later.
					h.sink.CrashAfter = len(h.sink.Records) + 5
				}
			}
			if crashes == 0 {
				t.Fatal("never crashed")
			}
			if err := windowtest.ExactlyOnce(h.sink.SourceIDs(), ids(items)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRestartWithoutStateDirKeepsIDs(t *testing.T) {
	items := events(30, 2*time.Hour, time.Minute)
	h := newHarness(t, items)
	h.sink.CrashAfter = 10
	if crashed, _ := h.run(t0.Add(5 * time.Hour)); !crashed {
		t.Fatal("did not crash")
	}
	h.dir = t.TempDir() // state directory lost
	h.run(t0.Add(5 * time.Hour))
	// Nothing lost; re-emitted records carry the same event ids, so the
	// pipeline's de-duplication still holds.
	seen := map[string]string{}
	for _, r := range h.sink.Records {
		if prev, ok := seen[r.Event.Source.EventID]; ok && prev != r.Event.ID {
			t.Fatalf("%s re-emitted with a different id", r.Event.Source.EventID)
		}
		seen[r.Event.Source.EventID] = r.Event.ID
	}
	if len(seen) != len(items) {
		t.Fatalf("got %d distinct events, want %d", len(seen), len(items))
	}
}

func TestQuietSourceResumesFromMark(t *testing.T) {
	items := events(3, 10*time.Minute, time.Minute)
	h := newHarness(t, items)
	h.run(t0.Add(48 * time.Hour))
	if len(h.sink.Records) != 3 {
		t.Fatalf("got %d records", len(h.sink.Records))
	}
	h.api.fetches = nil
	h.run(t0.Add(48*time.Hour + 10*time.Minute))
	if len(h.sink.Records) != 3 {
		t.Fatalf("restart re-emitted: %d records", len(h.sink.Records))
	}
	if len(h.api.fetches) == 0 {
		t.Fatal("no fetch after restart")
	}
	for _, w := range h.api.fetches {
		if !w.Rescan && w.From.Before(t0.Add(47*time.Hour)) {
			t.Fatalf("restart re-read main window %s: the progress mark was not used", w.Span)
		}
	}
}

func TestTransientErrorsAndRejectedTokens(t *testing.T) {
	items := events(60, 2*time.Hour, time.Minute)
	h := newHarness(t, items)
	h.api.failNext = 4
	h.api.badToken = true
	_, eng := h.run(t0.Add(4 * time.Hour))
	if err := windowtest.ExactlyOnce(h.sink.SourceIDs(), ids(items)); err != nil {
		t.Fatal(err)
	}
	if eng.Stats.Errors.Load() != 5 {
		t.Errorf("errors = %d, want 5", eng.Stats.Errors.Load())
	}
	// Backoff doubled: 1s, 2s, 4s, 8s somewhere in the sleeps.
	var backoffs []time.Duration
	for _, d := range h.clock.Sleeps() {
		if d == time.Second || d == 2*time.Second || d == 4*time.Second || d == 8*time.Second {
			backoffs = append(backoffs, d)
		}
	}
	if len(backoffs) < 4 {
		t.Errorf("backoff sleeps %v", backoffs)
	}
}

func TestBackfillProgressLines(t *testing.T) {
	items := events(20, 72*time.Hour, time.Minute)
	h := newHarness(t, items)
	h.clock.Advance(72 * time.Hour)
	h.cfg.ProgressEvery = time.Nanosecond
	var buf bytes.Buffer
	h.log = slog.New(slog.NewTextHandler(&buf, nil))
	h.run(t0.Add(73 * time.Hour))
	out := buf.String()
	if !strings.Contains(out, "backfill progress") || !strings.Contains(out, "percent=") {
		t.Fatalf("no progress line:\n%.2000s", out)
	}
	if !strings.Contains(out, "backfill complete") {
		t.Fatalf("no completion line:\n%.2000s", out)
	}
	if err := windowtest.ExactlyOnce(h.sink.SourceIDs(), ids(items)); err != nil {
		t.Fatal(err)
	}
}

func TestUnreadablePositionStartsOver(t *testing.T) {
	items := events(5, time.Hour, time.Minute)
	h := newHarness(t, items)
	h.sink.Records = []collectors.Record{{Position: collectors.Position(`{"v":9}`)}}
	h.run(t0.Add(3 * time.Hour))
	if h.probs.Count() != 1 {
		t.Fatalf("problems = %d, want 1", h.probs.Count())
	}
	if got := len(h.sink.Records) - 1; got != 5 {
		t.Fatalf("emitted %d, want 5", got)
	}
}

func TestTornStateLine(t *testing.T) {
	items := events(12, time.Hour, time.Minute)
	h := newHarness(t, items)
	h.sink.CrashAfter = 6
	h.run(t0.Add(3 * time.Hour))
	f, err := os.OpenFile(filepath.Join(h.dir, window.StoreFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"abc","t":12`) // torn by the crash
	f.Close()
	h.run(t0.Add(3 * time.Hour))
	if err := windowtest.ExactlyOnce(h.sink.SourceIDs(), ids(items)); err != nil {
		t.Fatal(err)
	}
	if h.probs.Count() != 1 {
		t.Fatalf("problems = %d, want 1 (the torn line)", h.probs.Count())
	}
}

func TestPositionRoundTrip(t *testing.T) {
	s := window.State{Origin: t0, Cursor: t0.Add(time.Hour), Seq: 7, Page: "tok",
		Win: &window.Window{Span: window.Span{From: t0, To: t0.Add(time.Hour)}, Rescan: true}}
	got, err := window.ParsePosition(s.Position())
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 7 || got.Page != "tok" || !got.Win.Rescan || !got.Cursor.Equal(s.Cursor) {
		t.Fatalf("round trip: %+v", got)
	}
	for _, bad := range []string{"x", `{"v":2}`, `{"v":1,"win":{"from":"2026-01-01T01:00:00Z","to":"2026-01-01T00:00:00Z"}}`} {
		if _, err := window.ParsePosition(collectors.Position(bad)); err == nil {
			t.Errorf("ParsePosition(%s) accepted", bad)
		}
	}
}
