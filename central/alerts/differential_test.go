package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
)

// TestFastPathsAgreeWithHCL drives the same random trail through four
// engines: one that evaluates every rule for every event as HCL (the
// reference), one given decoded events, one given events as central's
// index holds them (index fields and JSON, some of it written so that
// only a full decode reads it right), and one given the names with the
// index fields. All must raise the same alerts, in the same order, with
// the same keys and events.
func TestFastPathsAgreeWithHCL(t *testing.T) {
	cfg, ctx := loadRules(t, "testdata/differential.hcl")
	newEngine := func(slow bool) (*Engine, *memSink) {
		sink := &memSink{}
		e, err := New(context.Background(), cfg, ctx, Options{Sink: sink,
			State: FileState{Path: filepath.Join(t.TempDir(), "state.json")}})
		if err != nil {
			t.Fatal(err)
		}
		e.slow = slow
		t.Cleanup(e.Close)
		return e, sink
	}
	ref, refSink := newEngine(true)
	dec, decSink := newEngine(false)
	idx, idxSink := newEngine(false)
	exact, exactSink := newEngine(false)

	rng := rand.New(rand.NewPCG(9, 26))
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	actions := []string{"user.create", "user.delete", "user.modify", "user.lock", "password.reset",
		"group.member.add", "group.member.remove", "privilege.grant"}
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var decoded []Indexed
	var stored, named []Stored
	rewritten := 0
	for i := range 4000 {
		at = at.Add(time.Duration(rng.IntN(90)) * time.Second)
		ev := event.Event{ID: fmt.Sprintf("e%d", i), Time: at, ObservedTime: at,
			Action: event.Action(pick(actions...)), Outcome: event.Outcome(pick("success", "success", "failure")),
			Actor:  event.Actor{Name: pick("root", "alice", "bob", ""), ID: pick("u1", "root", "")},
			Origin: event.Origin{Host: pick("db1", "web1", ""), System: pick("linux", "aws")}}
		if rng.IntN(5) > 0 {
			ev.Target.User = &event.User{Name: pick("tmp", "bob", ""), ID: pick("tmp", "x", "")}
		}
		if rng.IntN(3) > 0 {
			ev.Target.Group = &event.Group{Name: pick("wheel", "users", ""), ID: pick("wheel", "g1", "")}
		}
		for range rng.IntN(3) {
			ev.Target.Privileges = append(ev.Target.Privileges, pick("s3:*", "iam:*"))
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		// JSON the name scanner must leave to the full decode.
		s := string(raw)
		switch rng.IntN(12) {
		case 0:
			s = strings.Replace(s, `"actor":`, `"Actor":`, 1)
		case 1:
			s = strings.Replace(s, `"name":"root"`, `"name":"r\u006fot"`, 1)
		case 2:
			s = strings.Replace(s, `"target":{`, `"target":{"GROUP":null `, 1)
			s = strings.Replace(s, `"target":{"GROUP":null }`, `"target":{"GROUP":null}`, 1)
			s = strings.Replace(s, `"target":{"GROUP":null "`, `"target":{"GROUP":null, "`, 1)
		case 3:
			s = strings.Replace(s, `{"id"`, `{"actor":{"id":"dup"},"id"`, 1)
		case 4:
			s = strings.Replace(s, `"user":{`, "\"user\" : {\n", 1)
		}
		if s != string(raw) {
			rewritten++
		}
		// What central indexes, and what the rules see: the JSON decoded.
		var got event.Event
		if err := json.Unmarshal([]byte(s), &got); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		decoded = append(decoded, Indexed{Event: &got, LogIndex: int64(i / 7)})
		stored = append(stored, Stored{Fields: indexFields(&got), ID: got.ID, Time: got.Time.UTC(),
			LogIndex: int64(i / 7), JSON: []byte(s)})
		named = append(named, Stored{Fields: exactFields(&got), NamesExact: true, ID: got.ID, Time: got.Time.UTC(),
			LogIndex: int64(i / 7), JSON: []byte(s)})
	}
	bg := context.Background()
	for i := 0; i < len(decoded); {
		n := min(1+rng.IntN(60), len(decoded)-i)
		if err := ref.EvaluateThrough(bg, decoded[i:i+n], int64(i)); err != nil {
			t.Fatal(err)
		}
		if err := dec.EvaluateThrough(bg, decoded[i:i+n], int64(i)); err != nil {
			t.Fatal(err)
		}
		if err := idx.EvaluateStored(bg, stored[i:i+n], int64(i)); err != nil {
			t.Fatal(err)
		}
		if err := exact.EvaluateStored(bg, named[i:i+n], int64(i)); err != nil {
			t.Fatal(err)
		}
		i += n
	}
	want := alertLines(refSink.alerts)
	perRule := map[string]int{}
	for _, a := range refSink.alerts {
		perRule[a.Rule]++
	}
	for _, r := range cfg.Rules {
		if perRule[r.Name] == 0 {
			t.Errorf("rule %s never fired: the trail does not test it", r.Name)
		}
	}
	t.Logf("%d alerts %v; %d events with rewritten JSON", len(want), perRule, rewritten)
	for name, sink := range map[string]*memSink{"decoded": decSink, "stored": idxSink, "stored with names": exactSink} {
		got := alertLines(sink.alerts)
		if len(got) != len(want) {
			t.Errorf("%s: %d alerts, reference %d", name, len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Errorf("%s: alert %d\n got %s\nwant %s", name, i, got[i], want[i])
				break
			}
		}
	}
}

// indexFields are the fields central indexes for an event: names, or ids
// when the name is empty.
func indexFields(e *event.Event) Fields {
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	f := Fields{Action: string(e.Action), Outcome: string(e.Outcome), Actor: or(e.Actor.Name, e.Actor.ID),
		Host: e.Origin.Host, System: e.Origin.System}
	if u := e.Target.User; u != nil {
		f.User = or(u.Name, u.ID)
	}
	if g := e.Target.Group; g != nil {
		f.Group = or(g.Name, g.ID)
	}
	return f
}

func alertLines(as []Alert) []string {
	out := make([]string, len(as))
	for i, a := range as {
		var evs []string
		for _, r := range a.Events {
			evs = append(evs, fmt.Sprintf("%s@%d@%s", r.ID, r.LogIndex, r.Time.UTC().Format(time.RFC3339)))
		}
		out[i] = fmt.Sprintf("%s id=%s key=%q summary=%q events=%v", a.Rule, a.ID, a.Key, a.Summary, evs)
	}
	return out
}
