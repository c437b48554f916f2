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
	members map[string]*valueSet // member, uniquemember, memberuid →
	size    int
}

// valueSet is a list of membership values with an index by valueKey, so
// that a change costs what its own values cost, not the group's size.
type valueSet struct {
	attr string
	vals [][]byte
	idx  map[string]int
}

func newValueSet(attr string) *valueSet { return &valueSet{attr: attr, idx: map[string]int{}} }

func (s *valueSet) add(v []byte) {
	k := valueKey(s.attr, v)
	if _, ok := s.idx[k]; ok {
		return
	}
	s.idx[k] = len(s.vals)
	s.vals = append(s.vals, v)
}

// del removes v, moving the last value into its place.
func (s *valueSet) del(v []byte) {
	k := valueKey(s.attr, v)
	i, ok := s.idx[k]
	if !ok {
		return
	}
	delete(s.idx, k)
	last := len(s.vals) - 1
	if i != last {
		s.vals[i] = s.vals[last]
		s.idx[valueKey(s.attr, s.vals[i])] = i
	}
	s.vals[last] = nil
	s.vals = s.vals[:last]
}

func (s *valueSet) clear() {
	s.vals = nil
	clear(s.idx)
}

// apply applies one modification.
func (s *valueSet) apply(m norm.Mod) {
	switch m.Op {
	case norm.OpReplace:
		s.clear()
		for _, v := range m.Values {
			s.add(v)
		}
	case norm.OpAdd:
		for _, v := range m.Values {
			s.add(v)
		}
	case norm.OpDelete:
		if len(m.Values) == 0 {
			s.clear()
		}
		for _, v := range m.Values {
			s.del(v)
		}
	}
}

func (k *knownEntry) set(attr string) *valueSet {
	s := k.members[attr]
	if s == nil {
		s = newValueSet(attr)
		k.members[attr] = s
	}
	return s
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
		ch.Old[a] = vs.vals
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
		k := &knownEntry{members: map[string]*valueSet{}}
		for _, m := range ch.Mods {
			switch b := norm.BaseName(m.Attr); {
			case b == "objectclass":
				k.classes = append(k.classes, m.Values...)
			case memberAttrs[b]:
				s := k.set(b)
				k.size -= len(s.vals)
				for _, v := range m.Values {
					s.add(v)
				}
				k.size += len(s.vals)
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
				s := k.set(b)
				k.size -= len(s.vals)
				s.apply(m)
				k.size += len(s.vals)
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

// applyMod applies one modification to a short value list (the classes).
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
