package changelog

import (
	"strings"

	"github.com/provtrail/provtrail/collectors/ldap/internal/norm"
)

// Bounds of what a directory remembers.
const (
	maxKnownEntries = 200000
	maxKnownValues  = 100000 // membership values of one entry
)

// directory remembers, for each entry whose creation it read from the
// changelog, its object classes and membership values, as the changes
// after the creation leave them. 389-DS's changelog records neither old
// values nor a deleted entry's class: with this, a whole-attribute replace
// or delete of members becomes member adds and removes, a delete is
// classified by the entry's classes, and a deleted privileged group's
// members lose the privilege. An entry created before the changelog's
// oldest entry (or before the collector's warm-up, or beyond the bounds)
// stays unknown, and is handled as before: by DN shape, with a plain
// group.modify for a replace.
type directory struct {
	entries map[string]*knownEntry // NormDN →
	// Forgotten counts entries not remembered because of the bounds.
	Forgotten int
}

type knownEntry struct {
	classes [][]byte
	members map[string][][]byte // member, uniquemember, memberuid →
	size    int
}

func newDirectory() *directory { return &directory{entries: map[string]*knownEntry{}} }

var memberAttrs = map[string]bool{"member": true, "uniquemember": true, "memberuid": true}

// valueKey compares membership values as the server does: DNs by their
// normal form (without the optional #'bits'B of uniqueMember), memberUid
// exactly.
func valueKey(attr string, v []byte) string {
	if attr == "memberuid" {
		return string(v)
	}
	s := string(v)
	if i := strings.LastIndex(s, "#'"); i > 0 {
		s = s[:i]
	}
	return norm.NormDN(s)
}

// old fills ch.Old from what is known of ch.DN. It must run before the
// change is normalised, and apply after.
func (d *directory) old(ch *norm.Change) {
	if d == nil {
		return
	}
	k := d.entries[norm.NormDN(ch.DN)]
	if k == nil {
		return
	}
	ch.Old = map[string][][]byte{"objectclass": k.classes}
	for a, vs := range k.members {
		ch.Old[a] = vs
	}
	ch.OldKnown = true
}

// apply records the effect of a (successful) change.
func (d *directory) apply(ch *norm.Change) {
	if d == nil {
		return
	}
	key := norm.NormDN(ch.DN)
	switch ch.Kind {
	case norm.KindAdd:
		if len(d.entries) >= maxKnownEntries {
			d.Forgotten++
			delete(d.entries, key)
			return
		}
		k := &knownEntry{members: map[string][][]byte{}}
		for _, m := range ch.Mods {
			switch b := norm.BaseName(m.Attr); {
			case b == "objectclass":
				k.classes = append(k.classes, m.Values...)
			case memberAttrs[b]:
				k.members[b] = append(k.members[b], m.Values...)
				k.size += len(m.Values)
			}
		}
		d.remember(key, k)
	case norm.KindDelete:
		delete(d.entries, key)
	case norm.KindModRDN:
		k := d.entries[key]
		delete(d.entries, key)
		if k != nil && ch.NewDN != "" {
			d.entries[norm.NormDN(ch.NewDN)] = k
		}
	case norm.KindModify:
		k := d.entries[key]
		if k == nil {
			return
		}
		for _, m := range ch.Mods {
			b := norm.BaseName(m.Attr)
			switch {
			case b == "objectclass":
				k.classes = applyMod(k.classes, m, func(v []byte) string { return strings.ToLower(strings.TrimSpace(string(v))) })
			case memberAttrs[b]:
				before := len(k.members[b])
				k.members[b] = applyMod(k.members[b], m, func(v []byte) string { return valueKey(b, v) })
				k.size += len(k.members[b]) - before
			}
		}
		d.remember(key, k)
	}
}

func (d *directory) remember(key string, k *knownEntry) {
	if k.size > maxKnownValues {
		d.Forgotten++
		delete(d.entries, key)
		return
	}
	d.entries[key] = k
}

// applyMod applies one modification to a value list.
func applyMod(vals [][]byte, m norm.Mod, key func([]byte) string) [][]byte {
	switch m.Op {
	case norm.OpReplace:
		return append([][]byte(nil), m.Values...)
	case norm.OpAdd:
		have := make(map[string]bool, len(vals))
		for _, v := range vals {
			have[key(v)] = true
		}
		for _, v := range m.Values {
			if k := key(v); !have[k] {
				have[k] = true
				vals = append(vals, v)
			}
		}
		return vals
	case norm.OpDelete:
		if len(m.Values) == 0 {
			return nil
		}
		gone := make(map[string]bool, len(m.Values))
		for _, v := range m.Values {
			gone[key(v)] = true
		}
		out := vals[:0:0]
		for _, v := range vals {
			if !gone[key(v)] {
				out = append(out, v)
			}
		}
		return out
	}
	return vals
}
