package accesslog

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/internal/testenv"
)

// ldapTool runs one of the OpenLDAP client tools (Debian's ldap-utils)
// against s as the admin.
func ldapTool(t *testing.T, s *testenv.Slapd, stdin string, tool string, args ...string) {
	t.Helper()
	path := "/usr/bin/" + tool
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
			t.Fatalf("%s is required (ldap-utils): %v", path, err)
		}
		t.Skipf("%s not installed", path)
	}
	cmd := exec.Command(path, append([]string{"-x", "-H", s.URL}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
}

// TestCLIChanges provisions the way shell scripts do, with ldapadd,
// ldapmodify, ldappasswd, ldapmodrdn and ldapdelete (cleartext passwords
// in LDIF, as many scripts send them), and checks the events and that no
// password reaches them.
func TestCLIChanges(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{})
	r := startCollector(t, testConfig(s), nil)
	admin := []string{"-D", testenv.SlapdAdminDN, "-w", testenv.SlapdAdminPW}
	ldapTool(t, s, `dn: uid=dora,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dora
cn: Dora
sn: Example
userPassword: `+alicePW1+`

dn: cn=sudo,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: sudo
member: uid=dora,ou=people,dc=example,dc=com
`, "ldapadd", admin...)
	ldapTool(t, s, `dn: uid=dora,ou=people,dc=example,dc=com
changetype: modify
replace: userPassword
userPassword: `+bobPW1+`
-
replace: mail
mail: dora@example.com
`, "ldapmodify", admin...)
	ldapTool(t, s, "", "ldappasswd", append(admin, "-s", bobPW2, "uid=dora,ou=people,dc=example,dc=com")...)
	ldapTool(t, s, "", "ldapmodrdn", append(admin, "-r", "uid=dora,ou=people,dc=example,dc=com", "uid=dorothy")...)
	ldapTool(t, s, "", "ldapdelete", append(admin, "uid=dorothy,ou=people,dc=example,dc=com")...)
	want := []string{
		"user.create success user=dora",
		"group.create success group=sudo",
		"group.member.add success user=dora,group=sudo",
		"privilege.grant success user=dora,group=sudo",
		"password.reset success user=dora",
		"user.modify success user=dora",
		"password.reset success user=dora",
		"user.rename success user=dorothy",
		"user.delete success user=dorothy",
	}
	checkEvents(t, waitFor(t, r.sink, len(want)), want)
}
