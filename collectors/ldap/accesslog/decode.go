package accesslog

import (
	"bytes"
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

// Attributes read from each log entry.
var logAttrs = []string{"objectClass", "reqStart", "reqEnd", "reqType", "reqSession", "reqAuthzID",
	"reqDN", "reqResult", "reqMessage", "reqMod", "reqOld", "reqNewRDN", "reqDeleteOldRDN",
	"reqNewSuperior", "reqNewDN", "reqEntryUUID", "entryCSN"}

// Limits on one log entry.
const (
	maxValues = 200000
	maxRaw    = 64 << 10
)

// fromLDAP converts a search result entry to the record form the parser
// also reads.
func fromLDAP(e *ldap.Entry) *ldif.Record {
	r := &ldif.Record{DN: e.DN}
	for _, a := range e.Attributes {
		for _, v := range a.ByteValues {
			r.Attrs = append(r.Attrs, ldif.Attr{Name: a.Name, Value: v})
		}
	}
	return r
}

// entry is a decoded accesslog entry.
type entry struct {
	change   *norm.Change
	reqStart string
	csn      string
	skip     bool // not a write we map (bind, search, extended)
}

var errNotLog = errors.New("not an accesslog entry")

// parseTime reads a GeneralizedTime "YYYYMMDDhhmmss[.f]Z"; the fraction of
// accesslog times is an operation counter, not a clock, and is dropped.
func parseTime(s string) (time.Time, error) {
	if len(s) < 15 {
		return time.Time{}, fmt.Errorf("bad time %q", s)
	}
	t, err := time.Parse("20060102150405", s[:14])
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q", s)
	}
	return t.UTC(), nil
}

// parseMod splits an accesslog reqMod value "attr:<op>[ value]". sep is true
// for the bare ":" separator between mods of the same attribute and op.
func parseMod(v []byte) (attr string, op byte, val []byte, sep bool, err error) {
	if len(v) == 1 && v[0] == ':' {
		return "", 0, nil, true, nil
	}
	i := bytes.IndexByte(v, ':')
	if i <= 0 || i+1 >= len(v) {
		return "", 0, nil, false, errors.New("reqMod value is not attr:<op> value")
	}
	attr, op = string(v[:i]), v[i+1]
	switch op {
	case norm.OpAdd, norm.OpDelete, norm.OpReplace, norm.OpIncrement:
	default:
		return "", 0, nil, false, fmt.Errorf("reqMod has unknown operation %q", op)
	}
	rest := v[i+2:]
	switch {
	case len(rest) == 0:
		return attr, op, nil, false, nil
	case rest[0] == ' ':
		return attr, op, rest[1:], false, nil
	}
	return "", 0, nil, false, errors.New("reqMod value is not attr:<op> value")
}

// parseOld splits a reqOld value "attr: value".
func parseOld(v []byte) (string, []byte, error) {
	i := bytes.IndexByte(v, ':')
	if i <= 0 {
		return "", nil, errors.New("reqOld value is not attr: value")
	}
	rest := v[i+1:]
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return string(v[:i]), rest, nil
}

// decode maps one accesslog entry to a Change.
func decode(r *ldif.Record) (*entry, error) {
	if len(r.Attrs) > maxValues {
		return nil, fmt.Errorf("entry has more than %d values", maxValues)
	}
	e := &entry{reqStart: r.First("reqStart"), csn: r.First("entryCSN")}
	if e.reqStart == "" {
		if d, err := ldap.ParseDN(r.DN); err == nil && len(d.RDNs) > 0 && strings.EqualFold(d.RDNs[0].Attributes[0].Type, "reqStart") {
			e.reqStart = d.RDNs[0].Attributes[0].Value
		}
	}
	typ := strings.ToLower(r.First("reqType"))
	if e.reqStart == "" || typ == "" {
		return nil, errNotLog
	}
	ch := &norm.Change{}
	switch typ {
	case "add":
		ch.Kind = norm.KindAdd
	case "delete":
		ch.Kind = norm.KindDelete
	case "modify":
		ch.Kind = norm.KindModify
	case "modrdn":
		ch.Kind = norm.KindModRDN
	default:
		e.skip = true
		return e, nil
	}
	ch.DN = r.First("reqDN")
	if ch.DN == "" {
		return nil, errors.New("entry has no reqDN")
	}
	ts := r.First("reqEnd")
	if ts == "" {
		ts = e.reqStart
	}
	t, err := parseTime(ts)
	if err != nil {
		return nil, err
	}
	ch.Time = t
	if s := r.First("reqSession"); s != "" {
		ch.Session = "conn=" + s
	}
	if rs := r.First("reqResult"); rs != "" {
		n, err := strconv.Atoi(strings.TrimSpace(rs))
		if err != nil {
			return nil, fmt.Errorf("bad reqResult %q", rs)
		}
		ch.Result = n
	}
	// Mods: consecutive values of the same attribute and op form one Mod,
	// unless a ":" separator stands between them.
	var modifiersName string
	split := false
	for _, v := range r.Values("reqMod") {
		attr, op, val, sep, err := parseMod(v)
		if err != nil {
			return nil, err
		}
		if sep {
			split = true
			continue
		}
		if norm.BaseName(attr) == "modifiersname" && len(val) > 0 {
			modifiersName = string(val)
		}
		n := len(ch.Mods)
		if !split && n > 0 && ch.Mods[n-1].Op == op && strings.EqualFold(ch.Mods[n-1].Attr, attr) && val != nil && len(ch.Mods[n-1].Values) > 0 {
			ch.Mods[n-1].Values = append(ch.Mods[n-1].Values, val)
		} else {
			m := norm.Mod{Attr: attr, Op: op}
			if val != nil {
				m.Values = [][]byte{val}
			}
			ch.Mods = append(ch.Mods, m)
		}
		split = false
	}
	olds := r.Values("reqOld")
	if len(olds) > 0 {
		ch.Old = map[string][][]byte{}
		ch.OldKnown = true
		for _, v := range olds {
			attr, val, err := parseOld(v)
			if err != nil {
				return nil, err
			}
			b := norm.BaseName(attr)
			ch.Old[b] = append(ch.Old[b], val)
		}
	}
	// Who: the authorization identity; a replicated change is applied by
	// the rootdn, so the change's own modifiersName is the better witness
	// only when reqAuthzID is absent.
	authz := r.Values("reqAuthzID")
	switch {
	case len(authz) > 0:
		ch.Actor, ch.ActorKnown = string(authz[0]), true
	case modifiersName != "":
		ch.Actor, ch.ActorKnown = modifiersName, true
	default:
		ch.ActorKnown = true // absent reqAuthzID: an anonymous operation
	}
	if ch.Kind == norm.KindModRDN {
		ch.NewDN = r.First("reqNewDN")
		if ch.NewDN == "" {
			ch.NewDN = newDN(ch.DN, r.First("reqNewRDN"), r.First("reqNewSuperior"))
		}
	}
	e.change = ch
	return e, nil
}

// newDN computes a modrdn's resulting DN.
func newDN(old, newRDN, newSuperior string) string {
	if newRDN == "" {
		return ""
	}
	if newSuperior != "" {
		return newRDN + "," + newSuperior
	}
	if i := strings.IndexByte(old, ','); i >= 0 {
		return newRDN + old[i:]
	}
	return newRDN
}

// raw renders the log entry for an event's Raw: LDIF lines, with secret
// values in reqMod and reqOld (and anything that looks like a password
// hash) replaced by event.Redacted, long values cut, and the whole
// bounded.
func raw(r *ldif.Record, s *norm.Secrets) string {
	var b strings.Builder
	b.WriteString("dn: ")
	b.WriteString(r.DN)
	for _, a := range r.Attrs {
		var line string
		switch norm.BaseName(a.Name) {
		case "reqmod":
			attr, op, val, sep, err := parseMod(a.Value)
			switch {
			case err != nil:
				line = a.Name + ": " + event.Redacted
			case sep:
				line = a.Name + ": :"
			case val == nil:
				line = a.Name + ": " + attr + ":" + string(op)
			case s.IsSecret(attr) || norm.LooksLikeHash(string(val)):
				line = a.Name + ": " + attr + ":" + string(op) + " " + event.Redacted
			default:
				line = norm.RawLine(a.Name, a.Value)
			}
		case "reqold":
			attr, val, err := parseOld(a.Value)
			switch {
			case err != nil:
				line = a.Name + ": " + event.Redacted
			case s.IsSecret(attr) || norm.LooksLikeHash(string(val)):
				line = a.Name + ": " + attr + ": " + event.Redacted
			default:
				line = norm.RawLine(a.Name, a.Value)
			}
		default:
			line = s.RawValue(a.Name, a.Value)
		}
		if b.Len()+len(line) > maxRaw {
			b.WriteString("\n# [raw cut at " + strconv.Itoa(maxRaw) + " bytes]")
			break
		}
		b.WriteByte('\n')
		b.WriteString(line)
	}
	return b.String()
}
