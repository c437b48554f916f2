package alerts

import (
	"bytes"
	"unicode/utf8"
)

// eventNames are the names rules can test without decoding an event.
type eventNames struct{ actor, user, group string }

// scanNames reads actor.name, target.user.name and target.group.name from
// an event's JSON, as encoding/json decodes them into event.Event, in one
// pass that allocates only the names. ok is false when it cannot be sure:
// a key that is escaped or matches one of those only case-insensitively,
// a repeated key, an escaped name, a value of the wrong type, or input
// that is not a JSON object; the caller then decodes the event. b must
// be valid JSON for ok to mean anything.
func scanNames(b []byte) (n eventNames, ok bool) {
	s := jsonScan{b: b}
	var actor, target bool
	ok = s.object(func(key []byte) bool {
		switch string(key) {
		case "actor":
			if actor {
				return false
			}
			actor = true
			return s.nameObject(&n.actor)
		case "target":
			if target {
				return false
			}
			target = true
			return s.target(&n)
		}
		if bytes.EqualFold(key, []byte("actor")) || bytes.EqualFold(key, []byte("target")) {
			return false
		}
		return s.skip()
	})
	return n, ok && s.end()
}

type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScan) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *jsonScan) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// object reads an object, calling member for each key with the scanner
// at its value; member returns false to give up.
func (s *jsonScan) object(member func(key []byte) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		key, ok := s.plainString()
		if !ok || s.peek() != ':' {
			return false
		}
		s.i++
		if !member(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// plainString reads a string without escapes and returns its contents;
// false for an escaped or non-UTF-8 string (encoding/json would change
// it) or a control character.
func (s *jsonScan) plainString() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			str := s.b[start:j]
			return str, utf8.Valid(str)
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// null consumes a null literal if one is next.
func (s *jsonScan) null() bool {
	if s.peek() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// nameObject reads an object's "name" into dst: a null object or a null
// or absent name is "".
func (s *jsonScan) nameObject(dst *string) bool {
	if s.null() {
		return true
	}
	seen := false
	return s.object(func(key []byte) bool {
		if string(key) == "name" {
			if seen {
				return false
			}
			seen = true
			if s.null() {
				return true
			}
			v, ok := s.plainString()
			if ok {
				*dst = string(v)
			}
			return ok
		}
		if bytes.EqualFold(key, []byte("name")) {
			return false
		}
		return s.skip()
	})
}

func (s *jsonScan) target(n *eventNames) bool {
	if s.null() {
		return true
	}
	var user, group bool
	return s.object(func(key []byte) bool {
		switch string(key) {
		case "user":
			if user {
				return false
			}
			user = true
			return s.nameObject(&n.user)
		case "group":
			if group {
				return false
			}
			group = true
			return s.nameObject(&n.group)
		}
		if bytes.EqualFold(key, []byte("user")) || bytes.EqualFold(key, []byte("group")) {
			return false
		}
		return s.skip()
	})
}

// skip passes over one value of any kind.
func (s *jsonScan) skip() bool {
	switch s.peek() {
	case 0:
		return false
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if !s.skipString() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}

func (s *jsonScan) skipString() bool {
	for j := s.i + 1; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			j++
		case '"':
			s.i = j + 1
			return true
		}
	}
	return false
}
