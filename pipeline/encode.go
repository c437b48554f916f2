package pipeline

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/provtrail/provtrail/event"
)

// appendEvent appends e's JSON encoding, byte for byte what json.Marshal
// gives, without reflection: encoding every event is the largest cost the
// pipeline adds to a busy collector. It is used only while the event
// schema is the one it was written for (fastEncoding); a field added to
// event.Event switches the pipeline back to json.Marshal, and the
// differential test in encode_test.go fails until this is updated.
func appendEvent(b []byte, e *event.Event) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	var err error
	b = append(b, `,"time":`...)
	if b, err = appendTime(b, e.Time); err != nil {
		return nil, err
	}
	b = append(b, `,"observed_time":`...)
	if b, err = appendTime(b, e.ObservedTime); err != nil {
		return nil, err
	}
	b = append(b, `,"action":`...)
	b = appendString(b, string(e.Action))
	b = append(b, `,"outcome":`...)
	b = appendString(b, string(e.Outcome))
	b = append(b, `,"severity":`...)
	b = appendString(b, string(e.Severity))

	b = append(b, `,"actor":{`...)
	o := objectWriter{b: b}
	o.str("name", e.Actor.Name)
	o.str("id", e.Actor.ID)
	o.int64p("uid", e.Actor.UID)
	o.str("type", string(e.Actor.Type))
	o.str("session", e.Actor.Session)
	o.str("auth", e.Actor.Auth)
	o.str("on_behalf_of", e.Actor.OnBehalfOf)
	b = append(o.b, '}')

	b = append(b, `,"target":{`...)
	o = objectWriter{b: b}
	if u := e.Target.User; u != nil {
		o.key("user")
		o.b = append(o.b, '{')
		in := objectWriter{b: o.b}
		in.str("name", u.Name)
		in.str("id", u.ID)
		in.int64p("uid", u.UID)
		in.str("email", u.Email)
		o.b = append(in.b, '}')
	}
	if g := e.Target.Group; g != nil {
		o.key("group")
		o.b = append(o.b, '{')
		in := objectWriter{b: o.b}
		in.str("name", g.Name)
		in.str("id", g.ID)
		in.int64p("gid", g.GID)
		o.b = append(in.b, '}')
	}
	if len(e.Target.Privileges) > 0 {
		o.key("privileges")
		o.b = append(o.b, '[')
		for i, p := range e.Target.Privileges {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = appendString(o.b, p)
		}
		o.b = append(o.b, ']')
	}
	b = append(o.b, '}')

	b = append(b, `,"origin":{`...)
	o = objectWriter{b: b}
	or := &e.Origin
	o.str("system", or.System)
	o.str("instance", or.Instance)
	o.str("host", or.Host)
	o.str("ip", or.IP)
	o.str("user_agent", or.UserAgent)
	o.str("tty", or.TTY)
	o.str("program", or.Program)
	if or.PID != 0 {
		o.key("pid")
		o.b = strconv.AppendInt(o.b, int64(or.PID), 10)
	}
	b = append(o.b, '}')

	if len(e.Changes) > 0 {
		b = append(b, `,"changes":[`...)
		for i := range e.Changes {
			c := &e.Changes[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"field":`...)
			b = appendString(b, c.Field)
			o = objectWriter{b: b, n: 1}
			o.str("old", c.Old)
			o.str("new", c.New)
			b = append(o.b, '}')
		}
		b = append(b, ']')
	}

	b = append(b, `,"source":{"collector":`...)
	b = appendString(b, e.Source.Collector)
	o = objectWriter{b: b, n: 1}
	s := &e.Source
	o.str("instance", s.Instance)
	o.str("file", s.File)
	o.int64p("offset", s.Offset)
	o.str("cursor", s.Cursor)
	o.str("event_id", s.EventID)
	b = append(o.b, '}')

	if e.Raw != "" {
		b = append(b, `,"raw":`...)
		b = appendString(b, e.Raw)
	}
	b = append(b, `,"ocsf":{"class_uid":`...)
	b = strconv.AppendInt(b, int64(e.OCSF.ClassUID), 10)
	b = append(b, `,"activity_id":`...)
	b = strconv.AppendInt(b, int64(e.OCSF.ActivityID), 10)
	b = append(b, `,"type_uid":`...)
	b = strconv.AppendInt(b, int64(e.OCSF.TypeUID), 10)
	b = append(b, `,"category_uid":`...)
	b = strconv.AppendInt(b, int64(e.OCSF.CategoryUID), 10)
	b = append(b, "}}"...)
	return b, nil
}

// objectWriter appends the members of a JSON object, omitting empty ones
// (the omitempty fields), with commas between them.
type objectWriter struct {
	b []byte
	n int // members written so far
}

func (o *objectWriter) key(k string) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *objectWriter) str(k, v string) {
	if v == "" {
		return
	}
	o.key(k)
	o.b = appendString(o.b, v)
}

func (o *objectWriter) int64p(k string, v *int64) {
	if v == nil {
		return
	}
	o.key(k)
	o.b = strconv.AppendInt(o.b, *v, 10)
}

func appendTime(b []byte, t time.Time) ([]byte, error) {
	// AppendText is MarshalJSON's strict RFC 3339 (same format, same
	// errors) without its allocation.
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, fmt.Errorf("json: error calling MarshalJSON for type time.Time: %w", err)
	}
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding with HTML escaping, as
// json.Marshal does it: quotes, backslashes and control characters
// escaped, <, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// eventSchema is the shape of event.Event that appendEvent encodes: every
// field's JSON name, Go kind and omitempty, depth first.
const eventSchema = "id:string,time:struct,observed_time:struct,action:string,outcome:string,severity:string," +
	"actor:struct{name:string?,id:string?,uid:ptr?,type:string?,session:string?,auth:string?,on_behalf_of:string?}," +
	"target:struct{user:ptr?{name:string?,id:string?,uid:ptr?,email:string?},group:ptr?{name:string?,id:string?,gid:ptr?},privileges:slice?}," +
	"origin:struct{system:string?,instance:string?,host:string?,ip:string?,user_agent:string?,tty:string?,program:string?,pid:int?}," +
	"changes:slice?{field:string,old:string?,new:string?}," +
	"source:struct{collector:string,instance:string?,file:string?,offset:ptr?,cursor:string?,event_id:string?}," +
	"raw:string?,ocsf:struct{class_uid:int,activity_id:int,type_uid:int,category_uid:int}"

// schemaOf describes t the way eventSchema does.
func schemaOf(t reflect.Type) string {
	var parts []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		p := name + ":" + f.Type.Kind().String()
		if strings.Contains(opts, "omitempty") {
			p += "?"
		}
		inner := f.Type
		for inner.Kind() == reflect.Pointer || inner.Kind() == reflect.Slice {
			inner = inner.Elem()
		}
		if inner.Kind() == reflect.Struct && inner != reflect.TypeOf(time.Time{}) {
			p += "{" + schemaOf(inner) + "}"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ",")
}

// fastEncoding is set when appendEvent matches event.Event.
var fastEncoding = schemaOf(reflect.TypeOf(event.Event{})) == eventSchema

// marshalEvent encodes e as json.Marshal would.
func marshalEvent(e *event.Event) ([]byte, error) {
	return marshalEventTo(make([]byte, 0, 512+len(e.Raw)), e)
}

// marshalEventTo appends e's encoding to b.
func marshalEventTo(b []byte, e *event.Event) ([]byte, error) {
	if !fastEncoding {
		j, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		return append(b, j...), nil
	}
	return appendEvent(b, e)
}
