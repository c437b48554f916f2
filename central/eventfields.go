package central

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/provtrail/provtrail/event"
)

// parsedEvent is what central reads from one event line: the indexed
// fields and, for the entitlement table, the few more that
// entitlements.Changes looks at.
type parsedEvent struct {
	ID, Action, Outcome string
	Time                time.Time
	ActorName, ActorID  string
	User                *event.User
	Group               *event.Group
	Privileges          []string
	System, Host        string
	// Instance, the user's Email and Changes are read for the
	// entitlement table; extrasOK is false when they did not decode.
	Instance string
	Changes  []event.Change
	extrasOK bool
}

// indexFields is the part of an event the store indexes (the reference
// decoding: decodeEventLine must agree with it).
type indexFields struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Outcome string    `json:"outcome"`
	Actor   struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"actor"`
	Target struct {
		User *struct {
			Name string `json:"name"`
			ID   string `json:"id"`
		} `json:"user"`
		Group *struct {
			Name string `json:"name"`
			ID   string `json:"id"`
		} `json:"group"`
		Privileges []string `json:"privileges"`
	} `json:"target"`
	Origin struct {
		System string `json:"system"`
		Host   string `json:"host"`
	} `json:"origin"`
}

// entExtras are the fields entitlements.Changes reads beyond indexFields.
type entExtras struct {
	Target struct {
		User *struct {
			Email string `json:"email"`
		} `json:"user"`
	} `json:"target"`
	Origin struct {
		Instance string `json:"instance"`
	} `json:"origin"`
	Changes []event.Change `json:"changes"`
}

// decodeEventLine reads one event line. ok is false when the line is not
// an object whose indexed fields have their types (the event is then
// stored under a synthetic id). It scans the line once; anything unusual
// (escaped or case-folded keys, repeated fields, deep nesting, values of
// another type) is left to encoding/json, whose decoding is the
// reference (decodeEventLineStd).
func decodeEventLine(line []byte) (parsedEvent, bool) {
	var p parsedEvent
	s := fieldScanner{data: line}
	if s.object(&p) {
		s.ws()
		if s.i == len(s.data) {
			p.extrasOK = true
			return p, true
		}
	}
	return decodeEventLineStd(line)
}

// decodeEventLineStd is decodeEventLine with encoding/json.
func decodeEventLineStd(line []byte) (parsedEvent, bool) {
	var f indexFields
	if err := json.Unmarshal(line, &f); err != nil {
		return parsedEvent{}, false
	}
	p := parsedEvent{ID: f.ID, Time: f.Time, Action: f.Action, Outcome: f.Outcome, ActorName: f.Actor.Name, ActorID: f.Actor.ID,
		Privileges: f.Target.Privileges, System: f.Origin.System, Host: f.Origin.Host}
	if u := f.Target.User; u != nil {
		p.User = &event.User{Name: u.Name, ID: u.ID}
	}
	if g := f.Target.Group; g != nil {
		p.Group = &event.Group{Name: g.Name, ID: g.ID}
	}
	var x entExtras
	if json.Unmarshal(line, &x) == nil {
		p.extrasOK = true
		p.Instance, p.Changes = x.Origin.Instance, x.Changes
		if u := x.Target.User; u != nil && p.User != nil {
			p.User.Email = u.Email
		}
	}
	return p, true
}

// event returns the fields as an event.Event (for entitlements.Changes).
func (p *parsedEvent) event() *event.Event {
	return &event.Event{ID: p.ID, Time: p.Time, Action: event.Action(p.Action), Outcome: event.Outcome(p.Outcome),
		Actor:   event.Actor{Name: p.ActorName, ID: p.ActorID},
		Target:  event.Target{User: p.User, Group: p.Group, Privileges: p.Privileges},
		Origin:  event.Origin{System: p.System, Instance: p.Instance, Host: p.Host},
		Changes: p.Changes}
}

// maxScanDepth is the nesting the scanner follows before it leaves the
// line to encoding/json.
const maxScanDepth = 64

// fieldScanner is a validating single-pass JSON reader for event lines.
// Every method returns false when the input is invalid or unusual; the
// caller then decodes the line with encoding/json.
type fieldScanner struct {
	data []byte
	i    int
}

func (s *fieldScanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte (0 at the end).
func (s *fieldScanner) peek() byte {
	s.ws()
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

func (s *fieldScanner) consume(c byte) bool {
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

// members reads an object's members, calling fn with each key (raw,
// without quotes) positioned at its value; fn must read the value.
func (s *fieldScanner) members(fn func(key []byte) bool) bool {
	if !s.consume('{') {
		return false
	}
	if s.consume('}') {
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		start := s.i + 1
		esc, ok := s.skipString()
		if !ok || esc {
			return false
		}
		key := s.data[start : s.i-1]
		if !s.consume(':') {
			return false
		}
		s.ws()
		if !fn(key) {
			return false
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// foldsTo reports whether encoding/json might match key to one of the
// known keys without being one of them: it matches case-insensitively,
// with Unicode folding, so any non-ASCII key counts.
func foldsTo(key []byte, known ...string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	for _, k := range known {
		if bytes.EqualFold(key, []byte(k)) {
			return true
		}
	}
	return false
}

var (
	topKeys    = []string{"id", "time", "action", "outcome", "actor", "target", "origin", "changes"}
	actorKeys  = []string{"name", "id"}
	targetKeys = []string{"user", "group", "privileges"}
	userKeys   = []string{"name", "id", "email"}
	groupKeys  = []string{"name", "id"}
	originKeys = []string{"system", "host", "instance"}
	changeKeys = []string{"field", "old", "new"}
)

// once returns false if bit was already seen (a repeated field).
func once(seen *uint32, bit uint32) bool {
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (s *fieldScanner) object(p *parsedEvent) bool {
	var seen uint32
	return s.members(func(key []byte) bool {
		switch string(key) {
		case "id":
			return once(&seen, 1) && s.str(&p.ID)
		case "time":
			if !once(&seen, 2) {
				return false
			}
			if s.null() {
				return true
			}
			start := s.i
			esc, ok := s.skipString()
			if !ok || esc {
				return false
			}
			return p.Time.UnmarshalJSON(s.data[start:s.i]) == nil
		case "action":
			return once(&seen, 4) && s.str(&p.Action)
		case "outcome":
			return once(&seen, 8) && s.str(&p.Outcome)
		case "actor":
			return once(&seen, 16) && s.stringFields(1, actorKeys, &p.ActorName, &p.ActorID)
		case "target":
			return once(&seen, 32) && s.target(p)
		case "origin":
			return once(&seen, 64) && s.stringFields(1, originKeys, &p.System, &p.Host, &p.Instance)
		case "changes":
			return once(&seen, 128) && s.changes(p)
		}
		return !foldsTo(key, topKeys...) && s.skip(0)
	})
}

func (s *fieldScanner) target(p *parsedEvent) bool {
	if s.null() {
		return true
	}
	var in uint32
	return s.members(func(k []byte) bool {
		switch string(k) {
		case "user":
			if !once(&in, 1) {
				return false
			}
			if s.null() {
				return true
			}
			u := &event.User{}
			p.User = u
			return s.stringFields(2, userKeys, &u.Name, &u.ID, &u.Email)
		case "group":
			if !once(&in, 2) {
				return false
			}
			if s.null() {
				return true
			}
			g := &event.Group{}
			p.Group = g
			return s.stringFields(2, groupKeys, &g.Name, &g.ID)
		case "privileges":
			if !once(&in, 4) {
				return false
			}
			if s.null() {
				return true
			}
			if !s.consume('[') {
				return false
			}
			p.Privileges = []string{}
			if s.consume(']') {
				return true
			}
			for {
				if s.peek() != '"' {
					return false
				}
				var v string
				if !s.str(&v) {
					return false
				}
				p.Privileges = append(p.Privileges, v)
				if s.consume(',') {
					continue
				}
				return s.consume(']')
			}
		}
		return !foldsTo(k, targetKeys...) && s.skip(1)
	})
}

func (s *fieldScanner) changes(p *parsedEvent) bool {
	if s.null() {
		return true
	}
	if !s.consume('[') {
		return false
	}
	p.Changes = []event.Change{}
	if s.consume(']') {
		return true
	}
	for {
		if s.peek() != '{' {
			return false
		}
		var c event.Change
		if !s.stringFields(2, changeKeys, &c.Field, &c.Old, &c.New) {
			return false
		}
		p.Changes = append(p.Changes, c)
		if s.consume(',') {
			continue
		}
		return s.consume(']')
	}
}

// stringFields reads an object (or null) whose members of interest are
// the strings named in names, into dsts (same order), each at most once.
// Other members are skipped at depth, unless they match a name only by
// case folding: encoding/json would take those, so the scanner gives up.
func (s *fieldScanner) stringFields(depth int, names []string, dsts ...*string) bool {
	if s.null() {
		return true
	}
	var seen uint32
	return s.members(func(k []byte) bool {
		for i, n := range names {
			if string(k) == n {
				return once(&seen, 1<<i) && s.str(dsts[i])
			}
		}
		return !foldsTo(k, names...) && s.skip(depth)
	})
}

// null consumes a null literal if one is next.
func (s *fieldScanner) null() bool {
	if bytes.HasPrefix(s.data[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// str reads a string (or null, which leaves *dst as it is, as
// encoding/json does).
func (s *fieldScanner) str(dst *string) bool {
	if s.null() {
		return true
	}
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return false
	}
	start := s.i
	esc, ok := s.skipString()
	if !ok {
		return false
	}
	raw := s.data[start+1 : s.i-1]
	if !esc && utf8.Valid(raw) {
		*dst = string(raw)
		return true
	}
	// Escapes or invalid UTF-8 (which encoding/json replaces).
	return json.Unmarshal(s.data[start:s.i], dst) == nil
}

// skipString moves past the string at s.i, reporting whether it has
// escapes.
func (s *fieldScanner) skipString() (esc, ok bool) {
	s.i++ // opening quote
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return esc, true
		case c < 0x20:
			return esc, false
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.data) {
				return esc, false
			}
			switch s.data[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.data) {
					return esc, false
				}
				for _, h := range s.data[s.i+2 : s.i+6] {
					if !isHex(h) {
						return esc, false
					}
				}
				s.i += 6
			default:
				return esc, false
			}
		default:
			s.i++
		}
	}
	return esc, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skip validates and moves past one value at s.i.
func (s *fieldScanner) skip(depth int) bool {
	if depth > maxScanDepth || s.i >= len(s.data) {
		return false
	}
	switch c := s.data[s.i]; {
	case c == '{':
		return s.members(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		s.i++
		if s.consume(']') {
			return true
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			if s.consume(',') {
				continue
			}
			return s.consume(']')
		}
	case c == '"':
		_, ok := s.skipString()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || isDigit(c):
		return s.number()
	}
	return false
}

func (s *fieldScanner) literal(lit string) bool {
	if bytes.HasPrefix(s.data[s.i:], []byte(lit)) {
		s.i += len(lit)
		return true
	}
	return false
}

// number moves past a JSON number.
func (s *fieldScanner) number() bool {
	d := s.data
	if d[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(d) && d[s.i] == '0':
		s.i++
	case s.i < len(d) && isDigit(d[s.i]):
		for s.i < len(d) && isDigit(d[s.i]) {
			s.i++
		}
	default:
		return false
	}
	if s.i < len(d) && d[s.i] == '.' {
		s.i++
		if s.i >= len(d) || !isDigit(d[s.i]) {
			return false
		}
		for s.i < len(d) && isDigit(d[s.i]) {
			s.i++
		}
	}
	if s.i < len(d) && (d[s.i] == 'e' || d[s.i] == 'E') {
		s.i++
		if s.i < len(d) && (d[s.i] == '+' || d[s.i] == '-') {
			s.i++
		}
		if s.i >= len(d) || !isDigit(d[s.i]) {
			return false
		}
		for s.i < len(d) && isDigit(d[s.i]) {
			s.i++
		}
	}
	return true
}
