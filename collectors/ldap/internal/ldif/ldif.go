// Package ldif reads the subset of LDIF (RFC 2849) that LDAP changelog
// exports and 389-DS's retro changelog "changes" values use: records of
// "attr: value" and "attr:: base64" lines, folded continuation lines,
// comments, and the "-" separator of change records. It is bounded: a
// record larger than Limits.MaxRecord is an error, never a huge allocation.
package ldif

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Attr is one "name: value" line, the value decoded.
type Attr struct {
	Name  string
	Value []byte
}

// Record is one LDIF record: the dn line and the lines after it.
type Record struct {
	DN    string
	Attrs []Attr
	// Line is the 1-based line number of the record's first line.
	Line int
}

// Values returns the values of attribute name (case-insensitive, exact
// attribute description).
func (r *Record) Values(name string) [][]byte {
	var out [][]byte
	for _, a := range r.Attrs {
		if strings.EqualFold(a.Name, name) {
			out = append(out, a.Value)
		}
	}
	return out
}

// First returns the first value of name as a string, or "".
func (r *Record) First(name string) string {
	for _, a := range r.Attrs {
		if strings.EqualFold(a.Name, name) {
			return string(a.Value)
		}
	}
	return ""
}

// Default bounds.
const (
	DefaultMaxRecord = 16 << 20
	DefaultMaxAttrs  = 1 << 20
)

// SyntaxError is a malformed record. The reader has skipped past it; Next
// can be called again.
type SyntaxError struct {
	Line   int
	Reason string
	// Sample is the start of the offending line, never a value that
	// follows "::" or a secret attribute (the caller redacts further).
	Sample string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Reader reads records from an LDIF stream.
type Reader struct {
	br        *bufio.Reader
	line      int
	MaxRecord int
	MaxAttrs  int
	eof       bool
}

// NewReader returns a Reader with the default bounds.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), MaxRecord: DefaultMaxRecord, MaxAttrs: DefaultMaxAttrs}
}

// readLine returns the next physical line without its line ending. Lines
// longer than MaxRecord are consumed and reported as too long.
func (r *Reader) readLine() ([]byte, bool, error) {
	if r.eof {
		return nil, false, io.EOF
	}
	var buf []byte
	tooLong := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > r.MaxRecord {
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			r.eof = true
			if len(buf) == 0 && !tooLong {
				return nil, false, io.EOF
			}
		} else if err != nil {
			return nil, false, err
		}
		break
	}
	r.line++
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	return buf, tooLong, nil
}

// Next returns the next record, io.EOF at the end of input, or a
// *SyntaxError for a malformed record (which is skipped).
func (r *Reader) Next() (*Record, error) {
	// Skip blank lines, comments and a version line between records.
	var first []byte
	for {
		l, tooLong, err := r.readLine()
		if err != nil {
			return nil, err
		}
		if tooLong {
			r.skipRecord()
			return nil, &SyntaxError{Line: r.line, Reason: fmt.Sprintf("line longer than %d bytes", r.MaxRecord)}
		}
		if len(bytes.TrimSpace(l)) == 0 || l[0] == '#' {
			continue
		}
		if bytes.HasPrefix(l, []byte("version:")) {
			continue
		}
		first = l
		break
	}
	start := r.line
	// Gather logical (unfolded) lines up to a blank line.
	var logical [][]byte
	var lineNos []int
	size := 0
	cur := append([]byte(nil), first...)
	curNo := start
	inComment := false
	for {
		l, tooLong, err := r.readLine()
		if err != nil && err != io.EOF {
			return nil, err
		}
		if tooLong {
			r.skipRecord()
			return nil, &SyntaxError{Line: r.line, Reason: fmt.Sprintf("line longer than %d bytes", r.MaxRecord)}
		}
		end := err == io.EOF || len(l) == 0
		if !end && l[0] == ' ' {
			if !inComment {
				cur = append(cur, l[1:]...)
				size += len(l) - 1
				if size > r.MaxRecord {
					r.skipRecord()
					return nil, &SyntaxError{Line: start, Reason: fmt.Sprintf("record larger than %d bytes", r.MaxRecord)}
				}
			}
			continue
		}
		if !inComment && cur != nil {
			logical = append(logical, cur)
			lineNos = append(lineNos, curNo)
			if len(logical) > r.MaxAttrs {
				r.skipRecord()
				return nil, &SyntaxError{Line: start, Reason: fmt.Sprintf("record has more than %d lines", r.MaxAttrs)}
			}
		}
		if end {
			break
		}
		inComment = l[0] == '#'
		cur = nil
		if !inComment {
			cur = append([]byte(nil), l...)
			size += len(l)
			if size > r.MaxRecord {
				r.skipRecord()
				return nil, &SyntaxError{Line: start, Reason: fmt.Sprintf("record larger than %d bytes", r.MaxRecord)}
			}
		}
		curNo = r.line
	}
	rec := &Record{Line: start}
	for i, l := range logical {
		a, err := ParseLine(l)
		if err != nil {
			return nil, &SyntaxError{Line: lineNos[i], Reason: err.Error(), Sample: sample(l)}
		}
		if i == 0 {
			if !strings.EqualFold(a.Name, "dn") {
				return nil, &SyntaxError{Line: lineNos[i], Reason: "record does not start with dn:", Sample: sample(l)}
			}
			rec.DN = string(a.Value)
			continue
		}
		rec.Attrs = append(rec.Attrs, a)
	}
	return rec, nil
}

// skipRecord consumes lines up to the next blank line.
func (r *Reader) skipRecord() {
	for {
		l, _, err := r.readLine()
		if err != nil || len(l) == 0 {
			return
		}
	}
}

// sample returns the attribute name part of a line, which is safe to show.
func sample(l []byte) string {
	if i := bytes.IndexByte(l, ':'); i >= 0 {
		l = l[:i]
	}
	if len(l) > 64 {
		l = l[:64]
	}
	return string(l)
}

// ParseLine parses one unfolded "name: value", "name:: base64" or "-" line.
// "-" yields Attr{Name: "-"}. URL values ("name:< url") are refused: a
// changelog never carries them and following them would read local files.
func ParseLine(l []byte) (Attr, error) {
	if len(l) == 1 && l[0] == '-' {
		return Attr{Name: "-"}, nil
	}
	i := bytes.IndexByte(l, ':')
	if i < 0 {
		return Attr{}, errors.New("line has no attribute name")
	}
	// i == 0: an empty attribute name, which 389-DS really emits for a
	// misconfigured retro changelog attribute; kept, with Name "".
	name := string(l[:i])
	if !validName(name) {
		return Attr{}, errors.New("invalid attribute description")
	}
	rest := l[i+1:]
	switch {
	case len(rest) > 0 && rest[0] == ':':
		enc := bytes.TrimLeft(rest[1:], " ")
		enc = bytes.TrimRight(enc, " ")
		v := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
		n, err := base64.StdEncoding.Decode(v, enc)
		if err != nil {
			return Attr{}, fmt.Errorf("attribute %s: bad base64 value", name)
		}
		return Attr{Name: name, Value: v[:n]}, nil
	case len(rest) > 0 && rest[0] == '<':
		return Attr{}, fmt.Errorf("attribute %s: URL values are not supported", name)
	default:
		v := bytes.TrimLeft(rest, " ")
		return Attr{Name: name, Value: append([]byte(nil), v...)}, nil
	}
}

// validName accepts attribute descriptions: letters, digits, '-', '.', ';'
// (options) and '#' (389-DS's unhashed#user#password).
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == ';', c == '#', c == '_':
		default:
			return false
		}
	}
	return true
}

// ParseFragment parses an LDIF fragment without a dn line, as found in the
// "changes" attribute of a 389-DS retro changelog entry: it unfolds
// continuation lines, drops comments, stops at a NUL byte, and returns the
// lines in order ("-" separators included).
func ParseFragment(b []byte, maxLines int) ([]Attr, error) {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	var out []Attr
	var cur []byte
	flush := func() error {
		if cur == nil {
			return nil
		}
		t := bytes.TrimRight(cur, "\r")
		cur = nil
		if len(bytes.TrimSpace(t)) == 0 {
			return nil
		}
		a, err := ParseLine(t)
		if err != nil {
			return err
		}
		out = append(out, a)
		if len(out) > maxLines {
			return fmt.Errorf("more than %d lines", maxLines)
		}
		return nil
	}
	for len(b) > 0 {
		var l []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			l, b = b[:i], b[i+1:]
		} else {
			l, b = b, nil
		}
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) > 0 && l[0] == ' ' && cur != nil {
			cur = append(cur, l[1:]...)
			continue
		}
		if err := flush(); err != nil {
			return out, err
		}
		if len(l) > 0 && l[0] == '#' {
			continue
		}
		cur = append([]byte{}, l...)
	}
	if err := flush(); err != nil {
		return out, err
	}
	return out, nil
}
