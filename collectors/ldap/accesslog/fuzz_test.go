package accesslog

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// FuzzParse feeds arbitrary LDIF to the parser and normaliser: no panic,
// every event valid, and a value written to userPassword never shows up.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.ldif")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("dn: reqStart=1,cn=accesslog\nreqStart: 20260101000000.000000Z\nreqType: modify\nreqDN: uid=a,ou=people,dc=x\nreqMod: userPassword:= Zq9secretZq9\nreqMod:: Og==\nreqOld: member: x\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		p, _ := NewParser(collectors.Settings{Name: "fuzz", Problems: collectors.ProblemFunc(func(collectors.Problem) {})}, &Config{})
		p.cfg.PrivilegedGroups = []string{"cn=sudo,ou=groups,dc=example,dc=com"}
		var s sink
		if err := p.Parse(context.Background(), strings.NewReader(string(in)), "fuzz", &s); err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Events() {
			if err := event.Validate(&e); err != nil {
				t.Fatalf("invalid event: %v", err)
			}
			if strings.Contains(string(in), "Zq9secretZq9") {
				js, _ := json.Marshal(e)
				if strings.Contains(string(js), "Zq9secretZq9") {
					t.Fatalf("secret leaked: %s", js)
				}
			}
		}
	})
}
