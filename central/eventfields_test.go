package central

import (
	"bytes"
	"os"
	"reflect"
	"testing"
	"time"
)

// eventLineCases are lines the scanner must read like encoding/json:
// typical events, and the unusual ones it leaves to encoding/json.
var eventLineCases = []struct {
	name string
	line string
	fast bool // read by the scanner itself
}{
	{"typical", `{"id":"a1","time":"2026-03-01T12:00:00Z","action":"group.member.add","outcome":"success","actor":{"name":"root","uid":0,"type":"human"},"target":{"user":{"name":"u1"},"group":{"name":"wheel"}},"origin":{"system":"linux","host":"h1","pid":12},"ocsf":{"class_uid":3006}}`, true},
	{"privileges and changes", `{"id":"a2","time":"2026-03-01T12:00:00.5+02:00","action":"privilege.grant","actor":{"id":"arn:x"},"target":{"user":{"id":"AIDA","email":"a@b"},"privileges":["s3:*","iam:*"]},"origin":{"system":"aws","instance":"123"},"changes":[{"field":"name","old":"x","new":"y"}],"raw":"a \"quoted\" \\ line","n":[1,-2.5e+3,true,false,null,{"a":[]}]}`, true},
	{"white space", " {\t\"id\" : \"a3\" , \"target\" : { \"privileges\" : [ ] } , \"changes\":[] }\r ", true},
	{"nulls", `{"id":"a4","time":null,"action":null,"actor":null,"target":{"user":null,"group":null,"privileges":null},"origin":null,"changes":null}`, true},
	{"escaped value", `{"id":"a\u00e9\n","actor":{"name":"r\/oot"}}`, true},
	{"invalid utf8 value", "{\"id\":\"a\xff\"}", true},
	{"case-folded key", `{"ID":"a5","id":"a6"}`, false},
	{"unicode-folded key", `{"ıd":"a7"}`, false},
	{"kelvin key", `{"id":"a8","actor":{"name":"x","Name":"y"}}`, false},
	{"escaped key", `{"\u0069d":"a9"}`, false},
	{"repeated key", `{"id":"a10","id":"a11"}`, false},
	{"repeated object", `{"id":"a12","target":{"user":{"name":"x"}},"target":{"user":{"id":"y"}}}`, false},
	{"wrong type id", `{"id":12}`, false},
	{"wrong type time", `{"id":"a13","time":12}`, false},
	{"bad time", `{"id":"a14","time":"yesterday"}`, false},
	{"wrong type privileges", `{"id":"a15","target":{"privileges":"x"}}`, false},
	{"null privilege", `{"id":"a16","target":{"privileges":[null]}}`, false},
	{"wrong type changes", `{"id":"a17","action":"user.rename","changes":"x"}`, false},
	{"wrong type change", `{"id":"a18","changes":[{"field":1}]}`, false},
	{"wrong type email", `{"id":"a19","target":{"user":{"email":true}}}`, false},
	{"not an object", `["id"]`, false},
	{"trailing data", `{"id":"a20"} x`, false},
	{"truncated", `{"id":"a21","x":[1,2`, false},
	{"bad number", `{"id":"a22","x":01}`, false},
	{"bad number 2", `{"id":"a23","x":1.}`, false},
	{"bad literal", `{"id":"a24","x":nul}`, false},
	{"control char", "{\"id\":\"a\x01\"}", false},
	{"bad escape", `{"id":"a\x"}`, false},
	{"empty", ``, false},
	{"deep", `{"id":"a25","x":` + string(bytes.Repeat([]byte("["), 100)) + string(bytes.Repeat([]byte("]"), 100)) + `}`, false},
}

func TestDecodeEventLineMatchesEncodingJSON(t *testing.T) {
	for _, tc := range eventLineCases {
		t.Run(tc.name, func(t *testing.T) {
			line := []byte(tc.line)
			var p parsedEvent
			s := fieldScanner{data: line}
			fast := s.object(&p)
			if fast {
				s.ws()
				fast = s.i == len(line)
			}
			if fast != tc.fast {
				t.Errorf("scanner read it: %v, want %v", fast, tc.fast)
			}
			checkDecodeEventLine(t, line)
		})
	}
}

func TestDecodeEventLineTestdata(t *testing.T) {
	data, err := os.ReadFile("testdata/events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bodyLines(data) {
		var p parsedEvent
		s := fieldScanner{data: line}
		if _, ok := decodeEventLineStd(line); ok && !s.object(&p) {
			t.Errorf("scanner gave up on %s", line)
		}
		checkDecodeEventLine(t, line)
	}
}

func checkDecodeEventLine(t *testing.T, line []byte) {
	t.Helper()
	got, gotOK := decodeEventLine(line)
	want, wantOK := decodeEventLineStd(line)
	if gotOK != wantOK {
		t.Fatalf("ok %v, encoding/json %v for %q", gotOK, wantOK, line)
	}
	if !gotOK {
		return
	}
	// Times compare by instant and offset.
	if !got.Time.Equal(want.Time) || got.Time.Format(time.RFC3339Nano) != want.Time.Format(time.RFC3339Nano) {
		t.Fatalf("time %v, encoding/json %v for %q", got.Time, want.Time, line)
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded\n%+v\nencoding/json\n%+v\nfor %q", got, want, line)
	}
	if got.User != nil && want.User != nil && *got.User != *want.User {
		t.Fatalf("user %+v, encoding/json %+v", *got.User, *want.User)
	}
}

// FuzzDecodeEventLine: the single-pass reader of event lines agrees with
// encoding/json on every input.
func FuzzDecodeEventLine(f *testing.F) {
	for _, tc := range eventLineCases {
		f.Add([]byte(tc.line))
	}
	data, err := os.ReadFile("testdata/events.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range bodyLines(data) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkDecodeEventLine(t, line)
	})
}

func BenchmarkDecodeEventLine(b *testing.B) {
	body, _ := testEventsAt("bench", 1, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	line := bytes.TrimSpace(body)
	b.Run("scanner", func(b *testing.B) {
		for b.Loop() {
			decodeEventLine(line)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			decodeEventLineStd(line)
		}
	})
}
