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
	var actor, target bool
	i, ok := members(b, 0, func(key []byte, i int) (int, bool) {
		switch string(key) {
		case "actor":
			if actor {
				return i, false
			}
			actor = true
			return nameObject(b, i, &n.actor)
		case "target":
			if target {
				return i, false
			}
			target = true
			return targetObject(b, i, &n)
		}
		if folds(key, "actor") || folds(key, "target") {
			return i, false
		}
		return skipValue(b, i)
	})
	return n, ok && skipWS(b, i) == len(b)
}

// members reads the object at b[i:], calling member with each key and the
// index of its value; member returns the index after the value, or false
// to give up. members returns the index after the object.
func members(b []byte, i int, member func(key []byte, i int) (int, bool)) (int, bool) {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return i, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return j, false
		}
		j = skipWS(b, j)
		if j >= len(b) || b[j] != ':' {
			return j, false
		}
		if j, ok = member(key, skipWS(b, j+1)); !ok {
			return j, false
		}
		j = skipWS(b, j)
		if j >= len(b) {
			return j, false
		}
		switch b[j] {
		case ',':
			i = skipWS(b, j+1)
		case '}':
			return j + 1, true
		default:
			return j, false
		}
	}
}

// folds reports whether key matches name case-insensitively the way
// encoding/json matches keys to fields, without being name.
func folds(key []byte, name string) bool {
	if len(key) == 0 || (key[0] < utf8.RuneSelf && key[0]|0x20 != name[0]) {
		return false // not even the first letter: the common case
	}
	return string(key) != name && bytes.EqualFold(key, []byte(name))
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// Byte classes for the scanner's loops (never written after init).
var (
	// plainStop: bytes that end or complicate a plain string.
	plainStop = byteSet(func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= utf8.RuneSelf })
	// stringStop: bytes that end or escape inside a string.
	stringStop = byteSet(func(c byte) bool { return c == '"' || c == '\\' })
	// structural: bytes that open or close a value inside an object or array.
	structural = byteSet(func(c byte) bool { return c == '"' || c == '{' || c == '}' || c == '[' || c == ']' })
)

func byteSet(in func(byte) bool) *[256]bool {
	var t [256]bool
	for c := range 256 {
		t[c] = in(byte(c))
	}
	return &t
}

// plainString reads the string at b[i:] when it has no escapes and is
// UTF-8 (encoding/json would change it otherwise) and returns its
// contents and the index after it.
func plainString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, i, false
	}
	j := i + 1
	for j < len(b) && !plainStop[b[j]] {
		j++
	}
	if j < len(b) && b[j] == '"' {
		return b[i+1 : j], j + 1, true
	}
	// Not ASCII (allowed when UTF-8), an escape or a control character.
	for ; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			return s, j + 1, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, j, false
		}
	}
	return nil, len(b), false
}

// nullAt reports whether a null literal is at b[i:].
func nullAt(b []byte, i int) bool {
	return bytes.HasPrefix(b[i:], []byte("null"))
}

// nameObject reads the "name" of the object at b[i:] into dst: a null
// object or a null or absent name is "".
func nameObject(b []byte, i int, dst *string) (int, bool) {
	if nullAt(b, i) {
		return i + 4, true
	}
	seen := false
	return members(b, i, func(key []byte, i int) (int, bool) {
		if string(key) == "name" {
			if seen {
				return i, false
			}
			seen = true
			if nullAt(b, i) {
				return i + 4, true
			}
			v, j, ok := plainString(b, i)
			if ok {
				*dst = string(v)
			}
			return j, ok
		}
		if folds(key, "name") {
			return i, false
		}
		return skipValue(b, i)
	})
}

func targetObject(b []byte, i int, n *eventNames) (int, bool) {
	if nullAt(b, i) {
		return i + 4, true
	}
	var user, group bool
	return members(b, i, func(key []byte, i int) (int, bool) {
		switch string(key) {
		case "user":
			if user {
				return i, false
			}
			user = true
			return nameObject(b, i, &n.user)
		case "group":
			if group {
				return i, false
			}
			group = true
			return nameObject(b, i, &n.group)
		}
		if folds(key, "user") || folds(key, "group") {
			return i, false
		}
		return skipValue(b, i)
	})
}

// skipValue returns the index after the value at b[i:].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			for i < len(b) && !structural[b[i]] {
				i++
			}
			if i >= len(b) {
				break
			}
			switch b[i] {
			case '"':
				var ok bool
				if i, ok = skipString(b, i); !ok {
					return i, false
				}
				continue
			case '{', '[':
				depth++
			default: // '}', ']'
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	default:
		start := i
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i, i > start
			}
			i++
		}
		return i, i > start
	}
}

// skipString returns the index after the string at b[i:].
func skipString(b []byte, i int) (int, bool) {
	j := i + 1
	for {
		for j < len(b) && !stringStop[b[j]] {
			j++
		}
		if j >= len(b) {
			return len(b), false
		}
		if b[j] == '"' {
			return j + 1, true
		}
		j += 2 // an escape and the byte it escapes
	}
}
