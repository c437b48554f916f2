package accesslog_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/accesslog"
)

// An accesslog entry as ldapsearch prints it: alice changes her own
// password with a cleartext value, which never reaches the event.
func ExampleParser() {
	in := `dn: reqStart=20261125173611.000001Z,cn=accesslog
objectClass: auditModify
reqStart: 20261125173611.000001Z
reqEnd: 20261125173611.000002Z
reqType: modify
reqSession: 1031
reqAuthzID: uid=alice,ou=people,dc=example,dc=com
reqDN: uid=alice,ou=people,dc=example,dc=com
reqResult: 0
reqMod: userPassword:= AliceNewPassw0rd!
reqMod: entryCSN:= 20261125173611.120000Z#000000#000#000000
reqOld: objectClass: inetOrgPerson
reqOld: userPassword: {SSHA}4ecXC95NXD1YBE+LGAaIdxcT3IVtB3yA
`
	p, _ := accesslog.NewParser(collectors.Settings{Name: "example"}, nil)
	_ = p.Parse(context.Background(), strings.NewReader(in), "example.ldif",
		collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
			for _, r := range recs {
				e := r.Event
				fmt.Println(e.Action, e.Outcome, e.Actor.Name, e.Target.User.Name, e.Changes[0].Field, e.Changes[0].New)
				fmt.Println(strings.Contains(e.Raw, "Passw0rd"), strings.Contains(e.Raw, "SSHA"))
			}
			return nil
		}))
	// Output:
	// password.change success alice alice userPassword [REDACTED]
	// false false
}
