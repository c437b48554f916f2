package accesslog

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldaptest"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

type (
	sink     = ldaptest.Sink
	problems = ldaptest.Problems
)

func summary(e event.Event) string { return ldaptest.Summary(e) }

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
			for _, e := range s.Events() {
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
			for _, pr := range probs.List() {
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
