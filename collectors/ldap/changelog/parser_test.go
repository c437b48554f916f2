package changelog

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/conn"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldaptest"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Secrets in the recorded samples: PBKDF2 hash fragments (base64 inside
// changes, and decoded) and the cleartext unhashed#user#password.
var sampleSecrets = []string{"CarolReset2!", "{PBKDF2", "PBKDF2-SHA512", "LLWeYpcS8TR3ZEa4", "Az9dqOj1tRQ7Xmw",
	"e1BCS0RGMi1TSEE1MTJ9", "oops-not-description"}

// The second is the privileged group of the real 389-DS recording.
var testPrivileged = []string{"cn=admins,cn=groups,cn=accounts,dc=example,dc=com", "cn=admins,ou=groups,dc=example,dc=com"}

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
			probs := &ldaptest.Problems{}
			p, _ := NewParser(collectors.Settings{Name: "test", Problems: probs},
				&Config{Common: conn.Common{PrivilegedGroups: testPrivileged}})
			var s ldaptest.Sink
			if err := p.Parse(context.Background(), strings.NewReader(string(in)), filepath.Base(f), &s); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, e := range s.Events() {
				if err := event.Validate(&e); err != nil {
					t.Errorf("invalid event %s: %v", ldaptest.Summary(e), err)
				}
				js, _ := json.Marshal(e)
				for _, sec := range sampleSecrets {
					if strings.Contains(string(js), sec) {
						t.Errorf("event leaks %q: %s", sec, js)
					}
				}
				lines = append(lines, ldaptest.Summary(e))
			}
			for _, pr := range probs.List() {
				lines = append(lines, "problem: "+pr.String())
				for _, sec := range sampleSecrets {
					if strings.Contains(pr.String(), sec) {
						t.Errorf("problem report leaks %q", sec)
					}
				}
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

// TestRawRedacted checks the Raw of the recorded password changes: the
// change record is there, decoded, with every secret value redacted.
func TestRawRedacted(t *testing.T) {
	in, err := os.ReadFile("testdata/retrocl_sample.ldif")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := NewParser(collectors.Settings{Name: "test"}, nil)
	var s ldaptest.Sink
	if err := p.Parse(context.Background(), strings.NewReader(string(in)), "x", &s); err != nil {
		t.Fatal(err)
	}
	var raw string
	for _, e := range s.Events() {
		if e.Source.EventID == "changenumber=18" {
			raw = e.Raw
		}
	}
	for _, want := range []string{"changeNumber: 18", "  replace: userPassword", "  userPassword: [REDACTED]",
		"  unhashed#user#password: [REDACTED]", "  modifiersname: cn=directory manager"} {
		if !strings.Contains(raw, want) {
			t.Errorf("raw lacks %q:\n%s", want, raw)
		}
	}
}
