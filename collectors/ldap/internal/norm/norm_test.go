package norm

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/event"
)

func vals(xs ...string) [][]byte {
	out := make([][]byte, len(xs))
	for i, x := range xs {
		out[i] = []byte(x)
	}
	return out
}

const (
	admin   = "cn=admin,dc=example,dc=com"
	alice   = "uid=alice,ou=people,dc=example,dc=com"
	bob     = "uid=bob,ou=people,dc=example,dc=com"
	carol   = "uid=carol,ou=people,dc=example,dc=com"
	admins  = "cn=admins,ou=groups,dc=example,dc=com"
	devs    = "cn=devs,ou=groups,dc=example,dc=com"
	when    = "2026-11-25T17:00:00Z"
	sidPrvG = "cn=Admins, ou=Groups, dc=Example, dc=com" // configured with other spelling
)

func brief(evs []event.Event) []string {
	var out []string
	for _, e := range evs {
		s := string(e.Action) + " " + string(e.Outcome)
		if e.Target.User != nil {
			s += " u=" + e.Target.User.Name
		}
		if e.Target.Group != nil {
			s += " g=" + e.Target.Group.Name
		}
		for _, c := range e.Changes {
			s += " " + c.Field
		}
		out = append(out, s)
	}
	return out
}

func TestEvents(t *testing.T) {
	n, err := New(Config{Collector: "ldap_test", System: "openldap", Server: "ldap://127.0.0.1:389",
		PrivilegedGroups: []string{sidPrvG}, SecretAttrs: []string{"appToken"}})
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := time.Parse(time.RFC3339, when)
	groupOld := func(members ...string) map[string][][]byte {
		return map[string][][]byte{"objectclass": vals("groupOfNames"), "member": vals(members...)}
	}
	tests := []struct {
		name string
		ch   Change
		want []string
	}{
		{"replace member list diffs against old values", Change{Kind: KindModify, DN: admins, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "member", Op: OpReplace, Values: vals(bob, "UID=Carol, OU=People, DC=example, DC=com")}},
			Old:  groupOld(alice, carol), OldKnown: true},
			[]string{"group.member.add success u=bob g=admins member", "privilege.grant success u=bob g=admins",
				"group.member.remove success u=alice g=admins member", "privilege.revoke success u=alice g=admins"}},
		{"delete whole attribute removes every old member", Change{Kind: KindModify, DN: devs, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "member", Op: OpDelete}}, Old: groupOld(alice, bob), OldKnown: true},
			[]string{"group.member.remove success u=alice g=devs member", "group.member.remove success u=bob g=devs member"}},
		{"replace without old values is a modify", Change{Kind: KindModify, DN: devs, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "member", Op: OpReplace, Values: vals(bob)}}},
			[]string{"group.modify success g=devs member"}},
		{"add then delete in one change is no net change", Change{Kind: KindModify, DN: devs, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "member", Op: OpAdd, Values: vals(bob)}, {Attr: "member", Op: OpDelete, Values: vals(bob)}},
			Old:  groupOld(alice), OldKnown: true},
			nil},
		{"uniqueMember with optional uid", Change{Kind: KindModify, DN: devs, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "uniqueMember", Op: OpAdd, Values: vals(bob + "#'0101'B")}},
			Old:  map[string][][]byte{"objectclass": vals("groupOfUniqueNames")}, OldKnown: true},
			[]string{"group.member.add success u=bob g=devs uniqueMember"}},
		{"self change with differently spelt DN", Change{Kind: KindModify, DN: alice, Actor: "UID=alice,OU=people, dc=example,dc=com", ActorKnown: true,
			Mods: []Mod{{Attr: "userPassword;x-test", Op: OpReplace, Values: vals("plain")}}, Old: map[string][][]byte{"objectclass": vals("inetOrgPerson")}},
			[]string{"password.change success u=alice userPassword"}},
		{"pwdReset by self is still a reset", Change{Kind: KindModify, DN: alice, Actor: alice, ActorKnown: true,
			Mods: []Mod{{Attr: "userPassword", Op: OpReplace, Values: vals("x")}, {Attr: "pwdReset", Op: OpReplace, Values: vals("TRUE")}},
			Old:  map[string][][]byte{"objectclass": vals("inetOrgPerson")}},
			[]string{"password.reset success u=alice userPassword"}},
		{"OID form of userPassword", Change{Kind: KindModify, DN: alice, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "2.5.4.35", Op: OpReplace, Values: vals("x")}}, Old: map[string][][]byte{"objectclass": vals("person")}},
			[]string{"password.reset success u=alice 2.5.4.35"}},
		{"a password written by a proxy is a reset, even of the proxy's own entry", Change{Kind: KindModify, DN: "cn=server,cn=plugins,cn=config",
			Actor: "cn=server,cn=plugins,cn=config", ActorKnown: true, ActorProxy: true,
			Mods: []Mod{{Attr: "userPassword", Op: OpReplace, Values: vals("x")}}, Old: map[string][][]byte{"objectclass": vals("person")}},
			[]string{"password.reset success u=server userPassword"}},
		{"389 lock and unlock", Change{Kind: KindModify, DN: alice, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "nsAccountLock", Op: OpReplace, Values: vals("false")}}},
			[]string{"user.unlock success u=alice"}},
		{"an auxiliary class added by a modify leaves the user a user", Change{Kind: KindModify, DN: alice,
			Actor: "cn=MemberOf Plugin,cn=plugins,cn=config", ActorKnown: true,
			Mods: []Mod{{Attr: "objectclass", Op: OpAdd, Values: vals("nsMemberOf")}, {Attr: "modifiersname", Op: OpReplace, Values: vals("x")}}},
			[]string{"user.modify success u=alice objectclass"}},
		{"an auxiliary class and a key added to a user outside ou=people", Change{Kind: KindModify, DN: "cn=svc,dc=example,dc=com", Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "objectClass", Op: OpAdd, Values: vals("ldapPublicKey")}, {Attr: "sshPublicKey", Op: OpAdd, Values: vals("ssh-ed25519 AAAA")}},
			Old:  map[string][][]byte{"objectclass": vals("account")}, OldKnown: true},
			[]string{"user.modify success u=svc objectClass sshPublicKey"}},
		{"an added class that is neither, on an entry of unknown class", Change{Kind: KindModify, DN: "ou=x,dc=example,dc=com", Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "objectClass", Op: OpAdd, Values: vals("extensibleObject")}}},
			nil},
		{"389 password policy lockout", Change{Kind: KindModify, DN: alice, ServerActor: "389-ds",
			Mods: []Mod{{Attr: "passwordRetryCount", Op: OpReplace, Values: vals("2")}, {Attr: "accountUnlockTime", Op: OpReplace, Values: vals("20261126011337Z")}}},
			[]string{"user.lock success u=alice"}},
		{"389 lockout removed by an administrator", Change{Kind: KindModify, DN: alice, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "accountUnlockTime", Op: OpDelete}, {Attr: "passwordRetryCount", Op: OpReplace, Values: vals("0")}}},
			[]string{"user.unlock success u=alice"}},
		{"389 re-hash of a password on bind", Change{Kind: KindModify, DN: alice, ServerActor: "389-ds",
			Mods: []Mod{{Attr: "userpassword", Op: OpReplace, Values: vals("{PBKDF2-SHA512}10000$a$b")}}},
			[]string{"user.modify success u=alice userpassword"}},
		{"389 failed bind count alone", Change{Kind: KindModify, DN: alice, ServerActor: "389-ds",
			Mods: []Mod{{Attr: "retryCountResetTime", Op: OpReplace, Values: vals("20261126002337Z")}, {Attr: "passwordRetryCount", Op: OpReplace, Values: vals("1")}}},
			nil},
		{"failed add of a user", Change{Kind: KindAdd, DN: carol, Actor: alice, ActorKnown: true, Result: 50,
			Mods: []Mod{{Attr: "objectClass", Op: OpAdd, Values: vals("inetOrgPerson")}, {Attr: "appToken", Op: OpAdd, Values: vals("tok")}}},
			[]string{"user.create failure u=carol objectClass appToken ldap_result"}},
		{"bookkeeping only", Change{Kind: KindModify, DN: alice, Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "modifyTimestamp", Op: OpReplace, Values: vals("x")}, {Attr: "passwordGraceUserTime", Op: OpReplace, Values: vals("0")}}},
			nil},
		{"not a user or group", Change{Kind: KindAdd, DN: "ou=x,dc=example,dc=com", Actor: admin, ActorKnown: true,
			Mods: []Mod{{Attr: "objectClass", Op: OpAdd, Values: vals("organizationalUnit")}}},
			nil},
		{"delete of a privileged group revokes", Change{Kind: KindDelete, DN: admins, Actor: admin, ActorKnown: true,
			Old: groupOld(alice), OldKnown: true},
			[]string{"group.delete success g=admins", "privilege.revoke success u=alice g=admins"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ch.Time = tm
			evs := n.Events(&tt.ch, Source{IDParts: []string{"srv", "1"}}, tm)
			if got := brief(evs); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q\nwant %q", got, tt.want)
			}
			ids := map[string]bool{}
			for _, e := range evs {
				if err := event.Validate(&e); err != nil {
					t.Errorf("invalid: %v", err)
				}
				if ids[e.ID] {
					t.Errorf("duplicate id within one change")
				}
				ids[e.ID] = true
				for _, c := range e.Changes {
					if c.Field == "appToken" && c.New != event.Redacted {
						t.Errorf("configured secret not redacted: %+v", c)
					}
				}
			}
		})
	}
}

func TestActor(t *testing.T) {
	n, _ := New(Config{Collector: "c"})
	ch := Change{Kind: KindModify, DN: alice, Actor: "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth", ActorKnown: true,
		Mods: []Mod{{Attr: "cn", Op: OpReplace, Values: vals("A")}}}
	evs := n.Events(&ch, Source{}, time.Now())
	if len(evs) != 1 || evs[0].Actor.Name != "root" || evs[0].Actor.Type != event.ActorSystem || *evs[0].Actor.UID != 0 {
		t.Fatalf("peercred actor: %+v", evs[0].Actor)
	}
	ch.Actor = ""
	if a := n.Events(&ch, Source{}, time.Now())[0].Actor; a.Name != "anonymous" {
		t.Fatalf("anonymous actor: %+v", a)
	}
	ch.ActorKnown = false
	if a := n.Events(&ch, Source{}, time.Now())[0].Actor; a.Type != event.ActorUnknown || a.Name != "" {
		t.Fatalf("unknown actor: %+v", a)
	}
	ch.ServerActor = "389-ds"
	if a := n.Events(&ch, Source{}, time.Now())[0].Actor; a.Type != event.ActorSystem || a.Name != "389-ds" {
		t.Fatalf("server actor: %+v", a)
	}
	ch.ActorKnown, ch.Actor = true, alice
	if a := n.Events(&ch, Source{}, time.Now())[0].Actor; a.Type != event.ActorHuman || a.Name != "alice" {
		t.Fatalf("a known actor wins over the server: %+v", a)
	}
	ch.ActorProxy, ch.Actor = true, "cn=server,cn=plugins,cn=config"
	if a := n.Events(&ch, Source{}, time.Now())[0].Actor; a.Type != event.ActorUnknown || a.Name != "" || a.ID != ch.Actor {
		t.Fatalf("proxy actor: %+v", a)
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecrets([]string{"myToken"})
	for _, a := range []string{"userPassword", "USERPASSWORD", "userPassword;binary", "2.5.4.35", "OID.2.5.4.35;x",
		"unhashed#user#password", "pwdHistory", "sambaNTPassword", "krbPrincipalKey", "mytoken", "unicodePwd"} {
		if !s.IsSecret(a) {
			t.Errorf("%s not secret", a)
		}
	}
	for _, a := range []string{"cn", "member", "userCertificate", "passwordGraceUserTime"} {
		if s.IsSecret(a) {
			t.Errorf("%s secret", a)
		}
	}
	for in, want := range map[string]string{
		"description":  "description: hello",
		"userPassword": "userPassword: " + event.Redacted,
	} {
		v := "hello"
		if in == "userPassword" {
			v = "{SSHA}abc"
		}
		if got := s.RawValue(in, []byte(v)); got != want {
			t.Errorf("RawValue(%s) = %q, want %q", in, got, want)
		}
	}
	if got := s.RawValue("description", []byte("old hash {ssha}abcdef")); !strings.Contains(got, event.Redacted) {
		t.Errorf("hash-looking value in a plain attribute not redacted: %q", got)
	}
	if got := s.RawValue("jpegPhoto", append([]byte{0xff, 0xd8}, make([]byte, 5000)...)); !strings.HasPrefix(got, "jpegPhoto:: ") || !strings.HasSuffix(got, "[5002 bytes, cut]") {
		t.Errorf("binary value: %q", got[:40])
	}
	for _, h := range []string{"$6$salt$hash", "$y$j9T$abc$def", "{PBKDF2-SHA512}10000$x", "{crypt}$1$a$b"} {
		if !LooksLikeHash(h) {
			t.Errorf("%q not a hash", h)
		}
	}
	if LooksLikeHash("a $5 bill") || LooksLikeHash("{curly}") {
		t.Error("false positive")
	}
}

func TestNormDN(t *testing.T) {
	for _, tc := range [][2]string{
		{"UID=Alice, ou=People,DC=example,dc=com", "uid=alice,ou=people,dc=example,dc=com"},
		{"cn=a+uid=b,dc=x", "cn=a+uid=b,dc=x"},
		{"uid=b+cn=a,dc=x", "cn=a+uid=b,dc=x"},
		{`cn=Smith\, John,dc=x`, "cn=smith, john,dc=x"},
		{"not a dn", "not a dn"},
	} {
		if got := NormDN(tc[0]); got != tc[1] {
			t.Errorf("NormDN(%q) = %q, want %q", tc[0], got, tc[1])
		}
	}
	// The fast path agrees with the full parser.
	for _, dn := range []string{"uid=alice,ou=people,dc=example,dc=com", " CN = Admin , dc=Example,dc=com"} {
		fast, ok := fastNormDN(dn)
		d, err := ldap.ParseDN(dn)
		if !ok || err != nil {
			t.Fatalf("%q: fast %v, parse %v", dn, ok, err)
		}
		var parts []string
		for _, r := range d.RDNs {
			parts = append(parts, strings.ToLower(r.Attributes[0].Type)+"="+strings.ToLower(r.Attributes[0].Value))
		}
		if slow := strings.Join(parts, ","); fast != slow {
			t.Errorf("%q: fast %q, parser %q", dn, fast, slow)
		}
	}
}
