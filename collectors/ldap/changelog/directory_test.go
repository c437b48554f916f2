package changelog

import (
	"fmt"
	"slices"
	"testing"

	"github.com/provtrail/provtrail/collectors/ldap/internal/norm"
)

func strs(vs [][]byte) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// TestDirectory replays changes into a directory and checks what it
// hands the next change as old values.
func TestDirectory(t *testing.T) {
	const g = "cn=staff,ou=groups,dc=example,dc=com"
	mod := func(attr string, op byte, vs ...string) norm.Mod {
		return norm.Mod{Attr: attr, Op: op, Values: vals(vs...)}
	}
	tests := []struct {
		name    string
		changes []norm.Change
		dn      string
		known   bool
		want    map[string][]string
	}{
		{"add then value adds and deletes, DNs compared normalised", []norm.Change{
			{Kind: norm.KindAdd, DN: g, Mods: []norm.Mod{mod("objectClass", norm.OpAdd, "top", "groupOfNames"), mod("member", norm.OpAdd, "uid=a,dc=x")}},
			{Kind: norm.KindModify, DN: "CN=Staff, ou=Groups,dc=example,dc=com", Mods: []norm.Mod{mod("member", norm.OpAdd, "uid=b,dc=x", "UID=A, dc=x")}},
			{Kind: norm.KindModify, DN: g, Mods: []norm.Mod{mod("member", norm.OpDelete, "uid=A,DC=x")}},
		}, g, true, map[string][]string{"objectclass": {"top", "groupOfNames"}, "member": {"uid=b,dc=x"}}},
		{"replace and delete-all", []norm.Change{
			{Kind: norm.KindAdd, DN: g, Mods: []norm.Mod{mod("objectClass", norm.OpAdd, "posixGroup"), mod("memberUid", norm.OpAdd, "a", "b"),
				mod("uniqueMember", norm.OpAdd, "uid=a,dc=x#'01'B")}},
			{Kind: norm.KindModify, DN: g, Mods: []norm.Mod{mod("memberUid", norm.OpReplace, "b", "c"), mod("uniqueMember", norm.OpDelete)}},
		}, g, true, map[string][]string{"objectclass": {"posixGroup"}, "memberuid": {"b", "c"}}},
		{"rename carries the entry", []norm.Change{
			{Kind: norm.KindAdd, DN: g, Mods: []norm.Mod{mod("objectClass", norm.OpAdd, "groupOfNames"), mod("member", norm.OpAdd, "uid=a,dc=x")}},
			{Kind: norm.KindModRDN, DN: g, NewDN: "cn=crew,ou=groups,dc=example,dc=com"},
		}, "cn=crew,ou=groups,dc=example,dc=com", true, map[string][]string{"objectclass": {"groupOfNames"}, "member": {"uid=a,dc=x"}}},
		{"the old DN is forgotten after a rename", []norm.Change{
			{Kind: norm.KindAdd, DN: g, Mods: []norm.Mod{mod("objectClass", norm.OpAdd, "groupOfNames")}},
			{Kind: norm.KindModRDN, DN: g, NewDN: "cn=crew,ou=groups,dc=example,dc=com"},
		}, g, false, nil},
		{"delete forgets", []norm.Change{
			{Kind: norm.KindAdd, DN: g, Mods: []norm.Mod{mod("objectClass", norm.OpAdd, "groupOfNames")}},
			{Kind: norm.KindDelete, DN: g},
		}, g, false, nil},
		{"a modify of an entry never added is not remembered", []norm.Change{
			{Kind: norm.KindModify, DN: g, Mods: []norm.Mod{mod("member", norm.OpAdd, "uid=a,dc=x")}},
		}, g, false, nil},
		{"objectClass changes follow", []norm.Change{
			{Kind: norm.KindAdd, DN: g, Mods: []norm.Mod{mod("objectClass", norm.OpAdd, "top", "person")}},
			{Kind: norm.KindModify, DN: g, Mods: []norm.Mod{mod("objectclass", norm.OpAdd, "nsMemberOf", "PERSON"), mod("objectClass", norm.OpDelete, "Top")}},
		}, g, true, map[string][]string{"objectclass": {"person", "nsMemberOf"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirectory()
			for i := range tt.changes {
				d.apply(&tt.changes[i])
			}
			ch := &norm.Change{Kind: norm.KindModify, DN: tt.dn}
			d.old(ch)
			if ch.OldKnown != tt.known {
				t.Fatalf("known %v, want %v", ch.OldKnown, tt.known)
			}
			got := map[string][]string{}
			for k, v := range ch.Old {
				if len(v) > 0 {
					got[k] = strs(v)
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("old = %q, want %q", got, tt.want)
			}
			for k, v := range tt.want {
				if !slices.Equal(got[k], v) {
					t.Fatalf("old[%s] = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// TestDirectoryBounds: a group past maxKnownValues is forgotten (so a
// later replace is not diffed against a partial list), and counted.
func TestDirectoryBounds(t *testing.T) {
	d := newDirectory()
	g := "cn=big,ou=groups,dc=example,dc=com"
	d.apply(&norm.Change{Kind: norm.KindAdd, DN: g, Mods: []norm.Mod{{Attr: "objectClass", Op: norm.OpAdd, Values: vals("groupOfNames")}}})
	var many []string
	for i := range maxKnownValues {
		many = append(many, fmt.Sprintf("uid=u%d,dc=x", i))
	}
	d.apply(&norm.Change{Kind: norm.KindModify, DN: g, Mods: []norm.Mod{{Attr: "member", Op: norm.OpAdd, Values: vals(many...)}}})
	ch := &norm.Change{DN: g}
	if d.old(ch); !ch.OldKnown || len(ch.Old["member"]) != maxKnownValues {
		t.Fatalf("at the bound: known %v, %d members", ch.OldKnown, len(ch.Old["member"]))
	}
	d.apply(&norm.Change{Kind: norm.KindModify, DN: g, Mods: []norm.Mod{{Attr: "member", Op: norm.OpAdd, Values: vals("uid=one-more,dc=x")}}})
	ch = &norm.Change{DN: g}
	if d.old(ch); ch.OldKnown || d.Forgotten != 1 {
		t.Fatalf("past the bound: known %v, forgotten %d", ch.OldKnown, d.Forgotten)
	}
}

func vals(xs ...string) [][]byte {
	out := make([][]byte, len(xs))
	for i, x := range xs {
		out[i] = []byte(x)
	}
	return out
}
