package changelog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/collectors/ldap/internal/ldif"
	"github.com/provtrail/provtrail/collectors/ldap/internal/norm"
	"github.com/provtrail/provtrail/event"
)

// Attributes read from each changelog entry.
var logAttrs = []string{"changeNumber", "targetDn", "changeTime", "changeType", "changes", "newRdn",
	"deleteOldRdn", "newSuperior", "targetUniqueId", "isReplicated"}

// serverActor names 389-DS as the actor of its own writes.
const serverActor = "389-ds"

// proxyDN is the modifiersname 389-DS writes for a change made through
// the Password Modify extended operation, in place of the client's DN.
const proxyDN = "cn=server,cn=plugins,cn=config"

// Limits.
const (
	maxChangeLines = 200000
	maxRaw         = 64 << 10
)

func fromLDAP(e *ldap.Entry) *ldif.Record {
	r := &ldif.Record{DN: e.DN}
	for _, a := range e.Attributes {
		for _, v := range a.ByteValues {
			r.Attrs = append(r.Attrs, ldif.Attr{Name: a.Name, Value: v})
		}
	}
	return r
}

// entry is a decoded changelog entry.
type entry struct {
	number  int64
	time    string
	target  string
	change  *norm.Change
	changes []ldif.Attr // the decoded "changes" lines, for Raw
	badBlob bool
	// replicated is isReplicated: TRUE; flagged says the entry has
	// isReplicated at all (the plugin must be configured to write it).
	replicated, flagged bool
}

var errNotChangelog = errors.New("not a changelog entry")

func parseTime(s string) (time.Time, error) {
	if len(s) < 15 {
		return time.Time{}, fmt.Errorf("bad changeTime %q", s)
	}
	t, err := time.Parse("20060102150405", s[:14])
	if err != nil {
		return time.Time{}, fmt.Errorf("bad changeTime %q", s)
	}
	return t.UTC(), nil
}

func changeNumber(r *ldif.Record) (int64, error) {
	s := strings.TrimSpace(r.First("changeNumber"))
	if s == "" {
		return 0, errNotChangelog
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad changeNumber %q", s)
	}
	return n, nil
}

// decode maps one changelog entry to a Change. The actor is the
// modifiersName (or creatorsName for an add) written inside "changes":
// the entry's own modifiersName is the plugin. Deletes carry no actor.
func decode(r *ldif.Record) (*entry, error) {
	n, err := changeNumber(r)
	if err != nil {
		return nil, err
	}
	e := &entry{number: n, time: r.First("changeTime"), target: r.First("targetDn")}
	if v := r.Values("isReplicated"); len(v) > 0 {
		e.flagged = true
		e.replicated = strings.EqualFold(strings.TrimSpace(string(v[0])), "TRUE")
	}
	typ := strings.ToLower(strings.TrimSpace(r.First("changeType")))
	if e.target == "" || typ == "" || e.time == "" {
		return nil, errors.New("changelog entry lacks targetDn, changeType or changeTime")
	}
	t, err := parseTime(e.time)
	if err != nil {
		return nil, err
	}
	ch := &norm.Change{DN: e.target, Time: t}
	switch typ {
	case "add":
		ch.Kind = norm.KindAdd
	case "delete":
		ch.Kind = norm.KindDelete
	case "modify":
		ch.Kind = norm.KindModify
	case "modrdn", "moddn":
		ch.Kind = norm.KindModRDN
	default:
		return nil, fmt.Errorf("unknown changeType %q", typ)
	}
	if blob := r.Values("changes"); len(blob) > 0 {
		lines, err := ldif.ParseFragment(blob[0], maxChangeLines)
		if err != nil {
			e.badBlob = true
			return e, fmt.Errorf("changes: %w", err)
		}
		e.changes = lines
		if err := fillMods(ch, lines); err != nil {
			e.badBlob = true
			return e, fmt.Errorf("changes: %w", err)
		}
	}
	if ch.Kind == norm.KindModRDN {
		newRDN, sup := r.First("newRdn"), r.First("newSuperior")
		if newRDN != "" {
			if sup == "" {
				if i := strings.IndexByte(e.target, ','); i >= 0 {
					sup = e.target[i+1:]
				}
			}
			ch.NewDN = newRDN
			if sup != "" {
				ch.NewDN += "," + sup
			}
		}
	}
	e.change = ch
	return e, nil
}

// fillMods reads the "changes" lines: for an add, the entry's attributes;
// for modify and modrdn, LDIF change records ("replace: attr", values,
// "-").
func fillMods(ch *norm.Change, lines []ldif.Attr) error {
	var creators, modifiers string
	note := func(a ldif.Attr) {
		switch norm.BaseName(a.Name) {
		case "creatorsname":
			creators = string(a.Value)
		case "modifiersname":
			modifiers = string(a.Value)
		}
	}
	if ch.Kind == norm.KindAdd {
		idx := map[string]int{}
		for _, a := range lines {
			if a.Name == "" || a.Name == "-" {
				continue
			}
			note(a)
			b := norm.BaseName(a.Name)
			if i, ok := idx[b]; ok {
				ch.Mods[i].Values = append(ch.Mods[i].Values, a.Value)
				continue
			}
			idx[b] = len(ch.Mods)
			ch.Mods = append(ch.Mods, norm.Mod{Attr: a.Name, Op: norm.OpAdd, Values: [][]byte{a.Value}})
		}
	} else {
		var cur *norm.Mod
		for _, a := range lines {
			if a.Name == "-" {
				cur = nil
				continue
			}
			if cur == nil {
				var op byte
				switch strings.ToLower(a.Name) {
				case "add":
					op = norm.OpAdd
				case "delete":
					op = norm.OpDelete
				case "replace":
					op = norm.OpReplace
				case "increment":
					op = norm.OpIncrement
				default:
					return fmt.Errorf("expected add:, delete: or replace:, got %q", truncate(a.Name))
				}
				attr := strings.TrimSpace(string(a.Value))
				if attr == "" {
					return fmt.Errorf("%q without an attribute name", truncate(a.Name)+":")
				}
				ch.Mods = append(ch.Mods, norm.Mod{Attr: attr, Op: op})
				cur = &ch.Mods[len(ch.Mods)-1]
				continue
			}
			if norm.BaseName(a.Name) != norm.BaseName(cur.Attr) {
				return fmt.Errorf("value of %q inside the change of %q", truncate(a.Name), truncate(cur.Attr))
			}
			note(a)
			cur.Values = append(cur.Values, a.Value)
		}
	}
	switch {
	case ch.Kind == norm.KindAdd && creators != "":
		ch.Actor, ch.ActorKnown = creators, true
	case modifiers != "":
		ch.Actor, ch.ActorKnown = modifiers, true
		// Recorded for ldappasswd (Password Modify extended operation),
		// whoever the client was: not the actor.
		ch.ActorProxy = norm.NormDN(modifiers) == proxyDN
	case ch.Kind == norm.KindModify:
		// A client's modify always carries a modifiersname; one without
		// is the server's own write (passwordgraceusertime after a
		// password change, passwordRetryCount and accountUnlockTime on
		// failed binds).
		ch.ServerActor = serverActor
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

// raw renders the entry for an event's Raw, "changes" decoded line by line
// with secret values redacted.
func raw(r *ldif.Record, e *entry, s *norm.Secrets) string {
	var b strings.Builder
	b.WriteString("dn: ")
	b.WriteString(r.DN)
	add := func(line string) bool {
		if b.Len()+len(line) > maxRaw {
			b.WriteString("\n# [raw cut at " + strconv.Itoa(maxRaw) + " bytes]")
			return false
		}
		b.WriteByte('\n')
		b.WriteString(line)
		return true
	}
	for _, a := range r.Attrs {
		if norm.BaseName(a.Name) != "changes" {
			if !add(s.RawValue(a.Name, a.Value)) {
				return b.String()
			}
			continue
		}
		if e == nil || e.badBlob {
			if !add(a.Name + ": " + event.Redacted) {
				return b.String()
			}
			continue
		}
		if !add(a.Name + ":") {
			return b.String()
		}
		for _, l := range e.changes {
			var line string
			switch {
			case l.Name == "-":
				line = "  -"
			default:
				line = "  " + s.RawValue(l.Name, l.Value)
			}
			if !add(line) {
				return b.String()
			}
		}
	}
	return b.String()
}
