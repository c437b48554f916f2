package alerts

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
)

// countingState is a FileState that counts writes.
type countingState struct {
	FileState
	mu     sync.Mutex
	writes int
}

func (c *countingState) SaveAlertState(ctx context.Context, b []byte) error {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.FileState.SaveAlertState(ctx, b)
}

func (c *countingState) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// TestStateWrittenPerIntervalNotPerEvent: windows that change without an
// alert are written at the save interval (or by Close), the first
// watermark and an alert at once; a new engine resumes from what was
// written, whether the old one was closed or not.
func TestStateWrittenPerIntervalNotPerEvent(t *testing.T) {
	t.Setenv("ONCALL_WEBHOOK", "http://127.0.0.1:1/unused")
	t.Setenv("SIEM_ADDRESS", "127.0.0.1:1")
	cfg, ctx := loadRules(t, "testdata/rules.hcl")
	cfg.Notifiers = nil
	st := &countingState{FileState: FileState{Path: filepath.Join(t.TempDir(), "state.json")}}
	open := func(every time.Duration) *Engine {
		e, err := New(context.Background(), cfg, ctx, Options{Sink: &memSink{}, State: st, SaveInterval: every})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	bg := context.Background()
	eng := open(time.Hour)
	grant := func(n int, at time.Duration) []Indexed { return []Indexed{ev(n, event.PrivilegeGrant, at, nil)} }
	if err := eng.EvaluateThrough(bg, grant(1, 0), 1); err != nil {
		t.Fatal(err)
	}
	if n := st.count(); n != 1 {
		t.Fatalf("%d writes after the first watermark, want 1", n)
	}
	for i := 2; i <= 4; i++ {
		if err := eng.EvaluateThrough(bg, grant(i, time.Duration(i)*time.Second), int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.count(); n != 1 {
		t.Fatalf("%d writes after windows changed within the interval, want 1", n)
	}
	eng.Close()
	if n := st.count(); n != 2 {
		t.Fatalf("%d writes after Close, want 2", n)
	}
	// Restarted: four grants are in the window; the fifth fires and is
	// written at once.
	eng = open(time.Hour)
	if th, ok := eng.Through(); !ok || th != 4 {
		t.Fatalf("watermark %d, %v after restart", th, ok)
	}
	sink := eng.sink.(*memSink)
	if err := eng.EvaluateThrough(bg, grant(5, 5*time.Second), 5); err != nil {
		t.Fatal(err)
	}
	if r := sink.rules(); len(r) != 1 || r[0] != "grant_burst" {
		t.Fatalf("fired %v", r)
	}
	if n := st.count(); n != 3 {
		t.Fatalf("%d writes after an alert, want 3", n)
	}
	// Not closed (a crash), with a short interval: the flusher writes the
	// window and watermark without more events.
	fast := open(20 * time.Millisecond)
	if err := fast.EvaluateThrough(bg, grant(6, 6*time.Second), 6); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		loaded, err := New(bg, cfg, ctx, Options{State: st.FileState})
		if err != nil {
			t.Fatal(err)
		}
		th, _ := loaded.Through()
		loaded.mu.Lock()
		n := 0
		for _, c := range loaded.comp {
			for _, w := range c.win {
				n += len(w.refs)
			}
		}
		loaded.mu.Unlock()
		loaded.Close()
		if th == 6 && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state after the interval: watermark %d, %d window entries", th, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fast.Close()
	eng.Close()
}

// TestAppendStateDecodesLikeJSON: the state encoder writes what
// encoding/json reads back as the same state, for odd keys, ids and
// times too.
func TestAppendStateDecodesLikeJSON(t *testing.T) {
	st := bigState()
	st.Windows["odd \"rule\"\n"] = map[string][]EventRef{
		"k\\ey|\u2028|é|\x01": {{ID: "<id>&\"", LogIndex: -3, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))}},
		"":                    {{ID: "", Time: time.Time{}}},
	}
	b, err := appendState(nil, st)
	if err != nil {
		t.Fatal(err)
	}
	// Again from the cached encodings of the keys: the same bytes.
	rules := compiledOf(st)
	b1, _ := appendWindows(nil, rules, st.Through)
	b2, _ := appendWindows(nil, rules, st.Through)
	var s1, s2 engineState
	if json.Unmarshal(b1, &s1) != nil || json.Unmarshal(b2, &s2) != nil || !reflect.DeepEqual(s1, s2) {
		t.Error("cached key encodings differ")
	}
	var got, want engineState
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %.200s", err, b)
	}
	ref, _ := json.Marshal(st)
	if err := json.Unmarshal(ref, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Error("appendState and encoding/json decode differently")
	}
	st.Through = nil
	b, _ = appendState(nil, st)
	var none engineState
	if err := json.Unmarshal(b, &none); err != nil || none.Through != nil {
		t.Errorf("without watermark: %v, %v", err, none.Through)
	}
	st.Windows["bad"] = map[string][]EventRef{"k": {{ID: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	if _, err := appendState(nil, st); err == nil {
		t.Error("year 10000 encoded")
	}
}

// TestStoredEventThatDoesNotDecode: an indexed event whose JSON does not
// decode as an event (a field of the wrong type) is still seen by the
// rules decided by its fields, and skipped, with one warning, by those
// that need HCL.
func TestStoredEventThatDoesNotDecode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.hcl")
	writeFileT(t, path, `
alert "literal" {
  when = event.action == "user.create" && event.actor.name == "root"
}
alert "hcl1" {
  when = lower(event.actor.name) == "root"
}
alert "hcl2" {
  when = event.action == "user.create" && strlen(event.target.user.name) > 0
}
`)
	cfg, ctx := loadRules(t, path)
	var logs strings.Builder
	sink := &memSink{}
	e, err := New(context.Background(), cfg, ctx, Options{Sink: sink, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	line := `{"id":"x1","time":"2026-03-01T00:00:00Z","action":"user.create","actor":{"name":"root"},"target":{"user":{"name":"tmp"}},"changes":"not a list"}`
	var ev event.Event
	if json.Unmarshal([]byte(line), &ev) == nil {
		t.Fatal("test event decodes")
	}
	err = e.EvaluateStored(context.Background(), []Stored{{ID: "x1", Time: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), JSON: []byte(line),
		Fields: Fields{Action: "user.create", Actor: "root", User: "tmp"}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r := sink.rules(); len(r) != 1 || r[0] != "literal" {
		t.Errorf("fired %v, want [literal]", r)
	}
	if n := strings.Count(logs.String(), "alert rule failed to evaluate"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

// compiledOf holds st's windows as the engine does.
func compiledOf(st *engineState) []*compiled {
	var out []*compiled
	for name, w := range st.Windows {
		c := &compiled{r: &Rule{Name: name}, win: map[string]*refList{}}
		for k, refs := range w {
			c.win[k] = &refList{refs: refs}
		}
		out = append(out, c)
	}
	return out
}

func appendState(buf []byte, st *engineState) ([]byte, error) {
	return appendWindows(buf, compiledOf(st), st.Through)
}
