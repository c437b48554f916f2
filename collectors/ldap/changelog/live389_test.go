package changelog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/collectors/ldap/internal/conn"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ds389test"
	"github.com/provtrail/provtrail/event"
)

// TestLive389DS runs the collector against a real 389-DS (only with
// PROVTRAIL_389DS=1, as root, with 389-ds-base installed; never in CI).
// The poll interval is long, so the events of changes made after the
// first poll arrive only through the persistent-search wake-up.
func TestLive389DS(t *testing.T) {
	ds := ds389test.Start(t)
	c := ds.Conn()
	defer c.Close()
	const secret = "Live389-Secret-Pw9"
	people, groups := "ou=people,"+ds389test.Suffix, "ou=groups,"+ds389test.Suffix
	add := func(dn string, attrs map[string][]string) {
		t.Helper()
		r := ldap.NewAddRequest(dn, nil)
		for _, a := range slices.Sorted(func(yield func(string) bool) {
			for k := range attrs {
				if !yield(k) {
					return
				}
			}
		}) {
			r.Attribute(a, attrs[a])
		}
		if err := c.Add(r); err != nil {
			t.Fatalf("add %s: %v", dn, err)
		}
	}
	mod := func(dn string, f func(*ldap.ModifyRequest)) {
		t.Helper()
		m := ldap.NewModifyRequest(dn, nil)
		f(m)
		if err := c.Modify(m); err != nil {
			t.Fatalf("modify %s: %v", dn, err)
		}
	}
	add(people, map[string][]string{"objectClass": {"top", "organizationalUnit"}, "ou": {"people"}})
	add(groups, map[string][]string{"objectClass": {"top", "organizationalUnit"}, "ou": {"groups"}})

	admins := "cn=admins," + groups
	cfg := &Config{Common: conn.Common{URL: ds.URL, BindDN: ds389test.RootDN, BindPassword: ds389test.RootPW,
		BaseDN: DefaultBaseDN, PageSize: 2, PrivilegedGroups: []string{admins}},
		PollInterval: 30 * time.Second, PersistentSearch: true}
	r := startRun(t, cfg, nil)
	time.Sleep(2 * time.Second) // the first poll, and the persistent search, are under way

	alice := "uid=alice," + people
	add(alice, map[string][]string{"objectClass": {"top", "inetOrgPerson"}, "uid": {"alice"}, "cn": {"Alice"},
		"sn": {"Example"}, "userPassword": {secret}})
	add(admins, map[string][]string{"objectClass": {"top", "groupOfNames"}, "cn": {"admins"}, "member": {alice}})
	mod(alice, func(m *ldap.ModifyRequest) { m.Replace("userPassword", []string{secret + "2"}) })
	mod(alice, func(m *ldap.ModifyRequest) { m.Replace("nsAccountLock", []string{"true"}) })
	mod(admins, func(m *ldap.ModifyRequest) { m.Delete("member", []string{alice}) })
	if err := c.Del(ldap.NewDelRequest(alice, nil)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"user.create directory manager alice",
		"group.create directory manager admins",
		"group.member.add directory manager admins alice",
		"privilege.grant directory manager admins alice",
		"password.reset directory manager alice",
		"user.lock directory manager alice",
		"group.member.remove directory manager admins alice",
		"privilege.revoke directory manager admins alice",
		"user.delete  alice",
	}
	// waitEvents gives up after 20s, before the 30s poll would come.
	evs := waitEvents(t, r.sink, len(want))
	var got []string
	for _, e := range evs {
		s := fmt.Sprintf("%s %s", e.Action, e.Actor.Name)
		if e.Target.Group != nil {
			s += " " + e.Target.Group.Name
		}
		if e.Target.User != nil {
			s += " " + e.Target.User.Name
		}
		got = append(got, s)
		if err := event.Validate(&e); err != nil {
			t.Errorf("invalid event: %v", err)
		}
		js, _ := json.Marshal(e)
		if strings.Contains(string(js), secret) || strings.Contains(string(js), "PBKDF2") {
			t.Errorf("event leaks a password or its hash: %s", js)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := r.probs.List(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
}
