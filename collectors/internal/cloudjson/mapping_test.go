package cloudjson_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/event"
)

// testMap maps {"id":X,"n":N} to N events with ids X.0, X.1, ...; a record
// without an id is unreadable, n 0 is of no interest.
func testMap(rec []byte) ([]event.Event, bool, error) {
	var r struct {
		ID string
		N  int
	}
	if err := json.Unmarshal(rec, &r); err != nil || r.ID == "" {
		return nil, false, errors.New("no id")
	}
	var out []event.Event
	for i := range r.N {
		out = append(out, event.Event{ID: r.ID + "." + string(rune('0'+i))})
	}
	return out, r.N > 0, nil
}

func ids(evs []event.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.ID+"@"+ev.Source.File)
	}
	return strings.Join(s, " ")
}

type problems struct {
	mu  sync.Mutex
	got []string
}

func (p *problems) Report(pr collectors.Problem) {
	p.mu.Lock()
	p.got = append(p.got, pr.Where+": "+pr.Reason)
	p.mu.Unlock()
}

func TestMapPage(t *testing.T) {
	var recs []json.RawMessage
	json.Unmarshal([]byte(`[{"id":"a","n":2},{"n":1},{"id":"b","n":0},{"id":"c","n":1}]`), &recs)
	var p problems
	got := cloudjson.MapPage(recs, testMap, &p, "src 10:00-11:00")
	if ids(got) != "a.0@ a.1@ c.0@" || strings.Join(p.got, "|") != "src 10:00-11:00 #2: no id" {
		t.Errorf("events %q, problems %q", ids(got), p.got)
	}
	if got := cloudjson.MapPage(nil, testMap, nil, "x"); got != nil {
		t.Errorf("empty page: %v", got)
	}
}

func TestOne(t *testing.T) {
	one := cloudjson.One(func(rec []byte) (event.Event, bool, error) {
		switch string(rec) {
		case "bad":
			return event.Event{}, false, errors.New("bad")
		case "skip":
			return event.Event{}, false, nil
		}
		return event.Event{ID: string(rec)}, true, nil
	})
	if evs, ok, err := one([]byte("x")); len(evs) != 1 || evs[0].ID != "x" || !ok || err != nil {
		t.Errorf("x: %v %v %v", evs, ok, err)
	}
	if evs, ok, err := one([]byte("skip")); evs != nil || ok || err != nil {
		t.Errorf("skip: %v %v %v", evs, ok, err)
	}
	if evs, ok, err := one([]byte("bad")); evs != nil || ok || err == nil {
		t.Errorf("bad: %v %v %v", evs, ok, err)
	}
	// One reuses its slice; MapPage copies every event out before the
	// next call.
	var recs []json.RawMessage
	json.Unmarshal([]byte(`["a","skip","b","c"]`), &recs)
	for i := range recs {
		recs[i] = recs[i][1 : len(recs[i])-1]
	}
	if got := ids(cloudjson.MapPage(recs, one, nil, "p")); got != "a@ b@ c@" {
		t.Errorf("page through One: %q", got)
	}
}

func TestParse(t *testing.T) {
	in := `{"items":[{"id":"a","n":2},{"id":""}]}` + "\n" + `{"id":"c","n":1}`
	var p problems
	var got []event.Event
	out := collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
		for _, r := range recs {
			got = append(got, r.Event)
		}
		return nil
	})
	if err := cloudjson.Parse(context.Background(), "test", strings.NewReader(in), "f.json", []string{"items"}, testMap, &p, out); err != nil {
		t.Fatal(err)
	}
	if ids(got) != "a.0@f.json a.1@f.json c.0@f.json" || strings.Join(p.got, "|") != "f.json:2: no id" {
		t.Errorf("events %q, problems %q", ids(got), p.got)
	}
	// A failing Emit ends the parse with an error naming type and input.
	stop := errors.New("agent stopping")
	n := 0
	err := cloudjson.Parse(context.Background(), "test", strings.NewReader(in), "f.json", []string{"items"}, testMap, nil,
		collectors.EmitFunc(func(context.Context, ...collectors.Record) error { n++; return stop }))
	if !errors.Is(err, stop) || n != 1 || !strings.HasPrefix(err.Error(), "test: parse f.json: ") {
		t.Errorf("emit failure: %v after %d", err, n)
	}
}
