package windowtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// Observed is the clock the parser tests give their mappers, so that
// golden files do not change with the time they run at.
func Observed() time.Time { return time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC) }

// ParseFunc parses a testdata file and returns what was emitted and how
// many problems were reported.
type ParseFunc func(t *testing.T, path string) ([]collectors.Record, int64)

// Parser returns the ParseFunc of a source's parser tests: the parser
// newParser makes for a collector of type typ, with its problems counted
// and fix (when set) applied to it (a fixed clock), run over the file.
func Parser[P collectors.Parser](typ string, newParser func(collectors.Settings) P, fix func(P)) ParseFunc {
	return func(t *testing.T, path string) ([]collectors.Record, int64) {
		t.Helper()
		pc := &collectors.ProblemCounter{}
		p := newParser(collectors.Settings{Type: typ, Problems: pc})
		if fix != nil {
			fix(p)
		}
		return ParseFile(t, p, path), pc.Count()
	}
}

// ParseFile runs p over the file at path, named by its base name as
// `provtrail parse` names its inputs, and returns what p emitted.
func ParseFile(t *testing.T, p collectors.Parser, path string) []collectors.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sink := &Sink{}
	if err := p.Parse(context.Background(), f, filepath.Base(path), sink); err != nil {
		t.Fatal(err)
	}
	return sink.Records
}

// GoldenFiles compares, in a subtest per file matching patterns, what parse
// makes of it with the file's golden NDJSON (the name without .json or
// .json.gz, plus .golden.ndjson), rewriting the golden files instead when
// update is set.
func GoldenFiles(t *testing.T, parse ParseFunc, update bool, patterns ...string) {
	t.Helper()
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatalf("no files match %q", patterns)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			recs, _ := parse(t, path)
			golden := strings.TrimSuffix(strings.TrimSuffix(path, ".gz"), ".json") + ".golden.ndjson"
			Golden(t, recs, golden, update)
		})
	}
}

// Summary is what a sample test pins of one event: the action, the
// actor's name, the target user's and group's name (else id), the target
// privileges joined by "|", and the outcome.
type Summary summary

type summary = struct {
	Action      event.Action
	Actor       string
	User, Group string
	Privileges  string
	Outcome     event.Outcome
}

// Row is a test's own name for Summary (type want windowtest.Summary), so
// that its tables may list rows without field names.
type Row interface{ ~summary }

// Summarize returns ev's Summary.
func Summarize(ev event.Event) Summary {
	s := Summary{Action: ev.Action, Actor: ev.Actor.Name, Privileges: strings.Join(ev.Target.Privileges, "|"), Outcome: ev.Outcome}
	if u := ev.Target.User; u != nil {
		s.User = firstOf(u.Name, u.ID)
	}
	if g := ev.Target.Group; g != nil {
		s.Group = firstOf(g.Name, g.ID)
	}
	return s
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Sample is what parsing one testdata file must give.
type Sample[W Row] struct {
	Events   []W
	Problems int64
}

// CheckSamples parses every file of samples (a name under testdata) with
// parse and compares the events' summaries and the number of problems;
// each, when set, checks every event further (where names file and event).
func CheckSamples[W Row](t *testing.T, samples map[string]Sample[W], parse ParseFunc, each func(t *testing.T, where string, ev event.Event)) {
	t.Helper()
	for file, want := range samples {
		recs, problems := parse(t, filepath.Join("testdata", file))
		if problems != want.Problems {
			t.Errorf("%s: %d problems, want %d", file, problems, want.Problems)
		}
		if len(recs) != len(want.Events) {
			t.Errorf("%s: %d events, want %d", file, len(recs), len(want.Events))
			continue
		}
		for i, w := range want.Events {
			ev := recs[i].Event
			if got := W(Summarize(ev)); got != w {
				t.Errorf("%s #%d:\n got %+v\nwant %+v", file, i, got, w)
			}
			if each != nil {
				each(t, fmt.Sprintf("%s #%d", file, i), ev)
			}
		}
	}
}
