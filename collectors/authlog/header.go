package authlog

import (
	"bytes"
	"time"
)

// layout is one of the three syslog file layouts the parser reads.
type layout uint8

const (
	// layoutTraditional: "Nov 25 17:37:08 host prog[pid]: msg"
	// (RSYSLOG_TraditionalFileFormat; Ubuntu, RHEL, Debian <= 11).
	layoutTraditional layout = iota + 1
	// layoutRFC3339: "2026-11-25T17:37:08.456929+00:00 host prog[pid]: msg"
	// (RSYSLOG_FileFormat, Debian 12's default).
	layoutRFC3339
	// layoutRFC5424: "<86>1 2026-11-25T17:37:08.456929+00:00 host prog pid - - msg".
	layoutRFC5424
)

// header is a syslog line split into its parts. All slices point into the
// line.
type header struct {
	layout layout
	ts     []byte
	host   []byte
	prog   []byte
	pid    []byte
	msg    []byte
}

type headerResult uint8

const (
	// headerOK: the line has a timestamp, a host and a program tag.
	headerOK headerResult = iota
	// headerNoTag: the timestamp and host are fine but there is no
	// "prog:" tag (rsyslog's "last message repeated" and the like).
	headerNoTag
	// headerBad: the line is in none of the three layouts.
	headerBad
)

// parseHeader splits b into h. It only checks the structure, not the
// timestamp's values (see parseTime), so that lines nobody cares about cost
// a few byte comparisons.
func parseHeader(b []byte, h *header) headerResult {
	if len(b) == 0 {
		return headerBad
	}
	switch c := b[0]; {
	case c == '<':
		return parse5424(b, h)
	case c >= '0' && c <= '9':
		if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' {
			return headerBad
		}
		i := bytes.IndexByte(b, ' ')
		if i < 0 {
			return headerBad
		}
		h.layout, h.ts = layoutRFC3339, b[:i]
		return parseHostTag(b[i+1:], h)
	case c >= 'A' && c <= 'Z':
		if len(b) < 17 || b[3] != ' ' || b[6] != ' ' || b[9] != ':' || b[12] != ':' || b[15] != ' ' {
			return headerBad
		}
		h.layout, h.ts = layoutTraditional, b[:15]
		return parseHostTag(b[16:], h)
	}
	return headerBad
}

func parseHostTag(b []byte, h *header) headerResult {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		i = len(b)
	}
	if i == 0 {
		return headerBad
	}
	if b[i-1] == ':' {
		// No host: the tag follows the timestamp directly.
		h.host = nil
		return parseTag(b, h)
	}
	h.host = b[:i]
	if i == len(b) {
		return headerNoTag
	}
	return parseTag(b[i+1:], h)
}

// parseTag reads "prog[pid]: msg" or "prog: msg".
func parseTag(b []byte, h *header) headerResult {
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case ':':
			if j == 0 {
				return headerNoTag
			}
			h.prog, h.pid = b[:j], nil
			h.msg = trimLeftSpace(b[j+1:])
			return headerOK
		case '[':
			if j == 0 {
				return headerNoTag
			}
			k := bytes.IndexByte(b[j+1:], ']')
			if k < 0 || j+k+2 >= len(b) || b[j+k+2] != ':' {
				return headerNoTag
			}
			h.prog, h.pid = b[:j], b[j+1:j+1+k]
			h.msg = trimLeftSpace(b[j+k+3:])
			return headerOK
		case ' ':
			return headerNoTag
		}
	}
	return headerNoTag
}

// parse5424 reads "<PRI>1 TS HOST APP PROCID MSGID SD MSG" (RFC 5424 as
// rsyslog's RSYSLOG_SyslogProtocol23Format writes it).
func parse5424(b []byte, h *header) headerResult {
	i := bytes.IndexByte(b, '>')
	if i < 2 || i > 4 || len(b) < i+3 || b[i+1] != '1' || b[i+2] != ' ' {
		return headerBad
	}
	rest := b[i+3:]
	var tok [5][]byte
	for k := range tok {
		j := bytes.IndexByte(rest, ' ')
		if j <= 0 {
			return headerBad
		}
		tok[k], rest = rest[:j], rest[j+1:]
	}
	h.layout, h.ts, h.host = layoutRFC5424, tok[0], nilDash(tok[1])
	h.prog, h.pid = nilDash(tok[2]), nilDash(tok[3])
	// Structured data: "-" or one or more [id k="v" ...] elements.
	switch {
	case len(rest) > 0 && rest[0] == '-':
		rest = rest[1:]
	case len(rest) > 0 && rest[0] == '[':
		for len(rest) > 0 && rest[0] == '[' {
			end := sdElementEnd(rest)
			if end < 0 {
				return headerBad
			}
			rest = rest[end+1:]
		}
	default:
		return headerBad
	}
	if len(rest) > 0 && rest[0] != ' ' {
		return headerBad
	}
	rest = trimLeftSpace(rest)
	rest = bytes.TrimPrefix(rest, []byte("\xef\xbb\xbf"))
	h.msg = trimLeftSpace(rest)
	if h.prog == nil {
		return headerNoTag
	}
	return headerOK
}

// sdElementEnd returns the index of the "]" closing the SD-ELEMENT that b
// starts with, honouring quoted values and their \" \\ \] escapes.
func sdElementEnd(b []byte) int {
	inQuote := false
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ']':
			if !inQuote {
				return i
			}
		}
	}
	return -1
}

func nilDash(b []byte) []byte {
	if len(b) == 1 && b[0] == '-' {
		return nil
	}
	return b
}

func trimLeftSpace(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

// timeParser turns header timestamps into times. The traditional layout
// has no year and no zone: the zone is loc, and the year is either fixed
// (year > 0, counting up when the stream wraps from December to January)
// or inferred as the latest year that does not put the line more than a
// day into the future of now.
type timeParser struct {
	loc       *time.Location
	year      int
	now       func() time.Time
	lastMonth time.Month
}

var monthIndex = map[string]time.Month{
	"Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
	"Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}

func (tp *timeParser) parse(h *header) (time.Time, bool) {
	if h.layout != layoutTraditional {
		t, err := time.Parse(time.RFC3339Nano, string(h.ts))
		if err != nil {
			return time.Time{}, false
		}
		return t, true
	}
	b := h.ts
	month, ok := monthIndex[string(b[:3])]
	if !ok {
		return time.Time{}, false
	}
	day := 0
	switch {
	case b[4] == ' ' && isDigit(b[5]):
		day = int(b[5] - '0')
	case isDigit(b[4]) && isDigit(b[5]):
		day = int(b[4]-'0')*10 + int(b[5]-'0')
	default:
		return time.Time{}, false
	}
	hh, ok1 := twoDigits(b[7:9])
	mm, ok2 := twoDigits(b[10:12])
	ss, ok3 := twoDigits(b[13:15])
	if !ok1 || !ok2 || !ok3 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	var year int
	if tp.year > 0 {
		if tp.lastMonth != 0 && month < tp.lastMonth && tp.lastMonth-month > 6 {
			tp.year++
		}
		year = tp.year
	} else {
		now := tp.now().In(tp.loc)
		year = now.Year()
		if time.Date(year, month, day, hh, mm, ss, 0, tp.loc).After(now.Add(24 * time.Hour)) {
			year--
		}
	}
	tp.lastMonth = month
	t := time.Date(year, month, day, hh, mm, ss, 0, tp.loc)
	if t.Day() != day {
		return time.Time{}, false // Feb 30 and the like
	}
	return t, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func twoDigits(b []byte) (int, bool) {
	if !isDigit(b[0]) || !isDigit(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}
