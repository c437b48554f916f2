package changelog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/conn"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldaptest"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldif"
	"github.com/provtrail/provtrail/event"
)

// FuzzParse: arbitrary LDIF (and arbitrary "changes" blobs) never panic,
// only yield valid events, and a userPassword value never leaks. Seeded
// with every testdata file, the real 389-DS recordings among them, and
// with each of their "changes" values on its own.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.ldif")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(nil))
		// Each recorded "changes" value alone, as the blob of a modify.
		rd := ldif.NewReader(bytes.NewReader(b))
		for {
			rec, err := rd.Next()
			if err != nil {
				break
			}
			for _, v := range rec.Values("changes") {
				f.Add([]byte(nil), v)
			}
		}
	}
	f.Add([]byte(nil), []byte("replace: userPassword\nuserPassword: Zq9secretZq9\n-\nreplace: modifiersname\nmodifiersname: uid=a,dc=x\n-\n\x00"))
	f.Fuzz(func(t *testing.T, in, blob []byte) {
		if blob != nil {
			in = append(in, []byte("\n\ndn: changenumber=1,cn=changelog\nchangeNumber: 1\ntargetDn: uid=a,ou=people,dc=x\nchangeTime: 20260101000000Z\nchangeType: modify\nchanges:: "+
				base64.StdEncoding.EncodeToString(blob)+"\n")...)
		}
		p, _ := NewParser(collectors.Settings{Name: "fuzz", Problems: collectors.ProblemFunc(func(collectors.Problem) {})},
			&Config{Common: conn.Common{PrivilegedGroups: testPrivileged}})
		var s ldaptest.Sink
		if err := p.Parse(context.Background(), strings.NewReader(string(in)), "fuzz", &s); err != nil {
			t.Fatal(err)
		}
		for _, e := range s.Events() {
			if err := event.Validate(&e); err != nil {
				t.Fatalf("invalid event %s (%s): %v", ldaptest.Summary(e), e.Source.EventID, err)
			}
			js, _ := json.Marshal(e)
			if strings.Contains(string(in)+string(blob), "Zq9secretZq9") && strings.Contains(string(js), "Zq9secretZq9") {
				t.Fatalf("secret leaked: %s", js)
			}
		}
	})
}
