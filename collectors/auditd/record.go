package auditd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// MaxLineLength bounds one audit record. auditd itself caps records at
// 8 KiB (MAX_AUDIT_MESSAGE_LENGTH) plus the enrichment.
const MaxLineLength = 64 << 10

// enrichSep separates a record from auditd's ENRICHED suffix
// (log_format = ENRICHED, Debian's default): UID="root" AUID="pt_admin" ...
const enrichSep = 0x1d

// field is one key=value of a record. Quoted values are unquoted; values
// of fields audit may hex-encode (acct, cmd, exe, grp...) are decoded when
// they are bare hex.
type field struct{ k, v string }

type fields []field

func (fs fields) get(k string) string {
	for _, f := range fs {
		if f.k == k {
			return f.v
		}
	}
	return ""
}

func (fs fields) has(k string) bool {
	for _, f := range fs {
		if f.k == k {
			return true
		}
	}
	return false
}

// Record is one line of audit.log.
type Record struct {
	Node   string
	Type   string
	Time   time.Time
	Serial uint64
	// ID is audit's own event id: "SEC.MS:SERIAL".
	ID string
	// Outer are the fields outside msg='...'; Inner those inside it (the
	// user-space message); Enriched the ENRICHED suffix's fields.
	Outer, Inner, Enriched fields
	Raw                    string
}

var (
	errNoType   = errors.New("no type= field")
	errNoStamp  = errors.New("no msg=audit(SEC.MS:SERIAL) stamp")
	errBadStamp = errors.New("bad msg=audit(...) stamp")
)

// parseRecord parses one audit.log line (without its newline).
func parseRecord(line []byte) (*Record, error) {
	r := &Record{Raw: string(line)}
	s := string(line)
	var enrich string
	if i := strings.IndexByte(s, enrichSep); i >= 0 {
		s, enrich = s[:i], s[i+1:]
	}
	if rest, ok := strings.CutPrefix(s, "node="); ok {
		node, after, _ := strings.Cut(rest, " ")
		r.Node, s = node, after
	}
	rest, ok := strings.CutPrefix(s, "type=")
	if !ok {
		return nil, errNoType
	}
	r.Type, rest, _ = strings.Cut(rest, " ")
	if r.Type == "" {
		return nil, errNoType
	}
	rest, ok = strings.CutPrefix(rest, "msg=audit(")
	if !ok {
		return nil, errNoStamp
	}
	stamp, body, ok := strings.Cut(rest, "):")
	if !ok {
		return nil, errNoStamp
	}
	ts, serial, ok := strings.Cut(stamp, ":")
	if !ok {
		return nil, errBadStamp
	}
	sec, ms, _ := strings.Cut(ts, ".")
	isec, err1 := strconv.ParseInt(sec, 10, 64)
	ims, err2 := strconv.ParseInt(ms, 10, 64)
	ser, err3 := strconv.ParseUint(serial, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || len(ms) != 3 || isec < 0 || isec > 1<<40 {
		return nil, errBadStamp
	}
	r.Time = time.Unix(isec, ims*int64(time.Millisecond)).UTC()
	r.Serial = ser
	r.ID = stamp
	if !accountTypes[r.Type] {
		// Only the stamp matters for grouping: skip the field work for the
		// bulk of a real audit.log (SYSCALL, PATH, ...).
		return r, nil
	}

	body = strings.TrimLeft(body, " ")
	// The user-space message sits in msg='...'; values inside never hold
	// a single quote (audit hex-encodes such values).
	if i := strings.Index(body, "msg='"); i >= 0 && (i == 0 || body[i-1] == ' ') {
		inner := body[i+len("msg='"):]
		j := strings.LastIndexByte(inner, '\'')
		if j < 0 {
			j = len(inner) // truncated record: take what is there
		}
		r.Outer = splitFields(body[:i])
		if j < len(inner) {
			r.Outer = append(r.Outer, splitFields(inner[j+1:])...)
		}
		r.Inner = splitInner(inner[:j])
	} else {
		r.Outer = splitFields(body)
	}
	if enrich != "" {
		r.Enriched = splitFields(enrich)
	}
	return r, nil
}

// hexable are the fields libaudit writes either "quoted" or, when the value
// holds a space, quote or control character, as bare upper-case hex.
var hexable = map[string]bool{
	"acct": true, "cmd": true, "exe": true, "comm": true, "grp": true, "new-group": true,
	"name": true, "cwd": true, "proctitle": true, "path": true, "key": true,
	"old-role": true, "new-role": true, "old-seuser": true, "new-seuser": true, "user": true,
	"id": false,
}

func decodeValue(k, v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	if hexable[k] && len(v) >= 2 && len(v)%2 == 0 && isUpperHex(v) {
		if b, err := hex.DecodeString(v); err == nil {
			return string(b)
		}
	}
	return v
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// splitFields splits `k=v k="quoted v" k=v` on spaces outside quotes.
func splitFields(s string) fields {
	var out fields
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return out
		}
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexByte(s, ' ')
		if eq < 0 || (sp >= 0 && sp < eq) {
			// A bare word: skip it.
			if sp < 0 {
				return out
			}
			s = s[sp:]
			continue
		}
		k := s[:eq]
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, "\"") {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				v, s = s, ""
			} else {
				v, s = s[:end+2], s[end+2:]
			}
		} else if sp := strings.IndexByte(s, ' '); sp >= 0 {
			v, s = s[:sp], s[sp:]
		} else {
			v, s = s, ""
		}
		out = append(out, field{k, decodeValue(k, v)})
	}
}

// opEnds are the keys that can follow op= in the messages of shadow-utils,
// PAM, sudo and semanage. op's value is unquoted and may hold spaces
// ("adding user to group", "changing /etc/group; group a/1, new name: b"),
// so it runs to the first " key=" of this set.
var opEnds = map[string]bool{
	"id": true, "acct": true, "grp": true, "exe": true, "grantors": true, "hostname": true,
	"addr": true, "terminal": true, "res": true, "new-gid": true, "new-group": true, "gid": true,
	"uid": true, "old-seuser": true, "old-role": true, "old-range": true, "new-seuser": true,
	"new-role": true, "new-range": true, "default-context": true, "selected-context": true,
	"auid": true, "sauid": true, "tty": true,
}

// opEnd returns where op's value ends in rest (the text after "op=").
func opEnd(rest string) int {
	start := 0
	for {
		eq := strings.IndexByte(rest[start:], '=')
		if eq < 0 {
			return len(rest)
		}
		eq += start
		sp := strings.LastIndexByte(rest[:eq], ' ')
		if opEnds[rest[sp+1:eq]] {
			if sp < 0 {
				return 0 // "op= id=1001": an empty op
			}
			return sp
		}
		start = eq + 1
	}
}

// splitInner splits the user-space message of a record.
func splitInner(s string) fields {
	s = strings.TrimLeft(s, " ")
	rest, ok := strings.CutPrefix(s, "op=")
	if !ok {
		return splitFields(s)
	}
	end := opEnd(rest)
	out := fields{{"op", strings.TrimSpace(rest[:end])}}
	return append(out, splitFields(rest[end:])...)
}

// trimNL removes one trailing newline and carriage return.
func trimNL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
