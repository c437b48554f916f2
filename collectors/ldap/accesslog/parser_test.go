package accesslog

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

// sink records what a collector or parser emitted.
type sink struct {
	mu   sync.Mutex
	recs []collectors.Record
}

func (s *sink) Emit(_ context.Context, recs ...collectors.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

func (s *sink) events() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]event.Event, len(s.recs))
	for i, r := range s.recs {
		out[i] = r.Event
	}
	return out
}

type problems struct {
	mu  sync.Mutex
	all []collectors.Problem
}

func (p *problems) Report(x collectors.Problem) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.all = append(p.all, x)
}

func (p *problems) list() []collectors.Problem {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]collectors.Problem(nil), p.all...)
}

// summary is one line per event: what a reviewer checks against the
// normalisation table.
func summary(e event.Event) string {
	var tgt []string
	if u := e.Target.User; u != nil {
		tgt = append(tgt, "user="+firstNonEmpty(u.Name, u.ID))
	}
	if g := e.Target.Group; g != nil {
		tgt = append(tgt, "group="+g.Name)
	}
	if len(e.Target.Privileges) > 0 {
		tgt = append(tgt, "priv="+strings.Join(e.Target.Privileges, ";"))
	}
	var ch []string
	for _, c := range e.Changes {
		s := c.Field
		if c.Old != "" || c.New != "" {
			s += "(" + c.Old + "->" + c.New + ")"
		}
		ch = append(ch, s)
	}
	return fmt.Sprintf("%s %s actor=%s/%s %s [%s]", e.Action, e.Outcome, e.Actor.Name, e.Actor.Type,
		strings.Join(tgt, " "), strings.Join(ch, " "))
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}

// secretsInSamples are the passwords and hashes the recorded samples hold.
var secretsInSamples = []string{"InitialPassw0rd!", "AdminResetPassw0rd!", "BobSelfPassw0rd!", "BobExopPassw0rd!",
	"AliceNewPassw0rd!", "auditsecret", "{SSHA}", "4ecXC95NXD1YBE"}

func TestParseGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.ldif")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			probs := &problems{}
			p, _ := NewParser(collectors.Settings{Name: "test", Problems: probs}, &Config{})
			p.cfg.PrivilegedGroups = []string{"cn=sudo,ou=groups,dc=example,dc=com"}
			var s sink
			if err := p.Parse(context.Background(), strings.NewReader(string(in)), filepath.Base(f), &s); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, e := range s.events() {
				if err := event.Validate(&e); err != nil {
					t.Errorf("invalid event %s: %v", summary(e), err)
				}
				js, _ := json.Marshal(e)
				for _, sec := range secretsInSamples {
					if strings.Contains(string(js), sec) {
						t.Errorf("event leaks %q: %s", sec, js)
					}
				}
				lines = append(lines, summary(e))
			}
			for _, pr := range probs.list() {
				lines = append(lines, "problem: "+pr.String())
			}
			got := strings.Join(lines, "\n") + "\n"
			golden := strings.TrimSuffix(f, ".ldif") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("events differ from %s:\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}
