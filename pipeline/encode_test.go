package pipeline

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
)

// TestEventSchema fails when event.Event changes shape: appendEvent must
// then be updated (until it is, the pipeline uses json.Marshal).
func TestEventSchema(t *testing.T) {
	if got := schemaOf(reflect.TypeOf(event.Event{})); got != eventSchema {
		t.Fatalf("event.Event changed; update appendEvent and eventSchema.\n got %s\nwant %s", got, eventSchema)
	}
}

var tricky = []string{"", "a", "alice", "<script>&amp;</script>", "tab\there", "nl\nx", "quote\"back\\slash",
	"\x00\x01\x1f\x7f", "\b\f\r", "caf\u00e9", "\u2028\u2029", "bad\xff\xfeutf8", "\xe2\x80", "日本語", "$6$salt$hash", "[REDACTED]"}

// fill sets every field of v (recursively) to random values drawn so that
// empty and non-empty, nil and non-nil, and awkward strings all occur.
func fill(r *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if r.IntN(3) == 0 {
			v.SetString("")
			return
		}
		s := tricky[r.IntN(len(tricky))]
		if r.IntN(2) == 0 {
			buf := make([]byte, r.IntN(12))
			for i := range buf {
				buf[i] = byte(r.IntN(256))
			}
			s += string(buf)
		}
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		switch r.IntN(3) {
		case 0:
			v.SetInt(0)
		case 1:
			v.SetInt(r.Int64N(1 << 40))
		default:
			v.SetInt(-r.Int64N(1000))
		}
	case reflect.Pointer:
		if r.IntN(3) == 0 {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(r, p.Elem())
		v.Set(p)
	case reflect.Slice:
		n := r.IntN(4)
		if n == 0 && r.IntN(2) == 0 {
			v.SetZero()
			return
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fill(r, s.Index(i))
		}
		v.Set(s)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			var tm time.Time
			switch r.IntN(4) {
			case 0:
			case 1:
				tm = time.Unix(r.Int64N(4e9), r.Int64N(1e9)).UTC()
			case 2:
				tm = time.Unix(r.Int64N(4e9), 0).In(time.FixedZone("x", 3600*5+1800))
			default:
				tm = time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("y", -3600*8))
			}
			v.Set(reflect.ValueOf(tm))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(r, v.Field(i))
			}
		}
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

func checkSame(t *testing.T, e *event.Event) {
	t.Helper()
	want, werr := json.Marshal(e)
	got, gerr := appendEvent(nil, e)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("errors differ: json %v, ours %v", werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("encodings differ:\n ours %s\n json %s", got, want)
	}
}

func TestAppendEventMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		var e event.Event
		fill(r, reflect.ValueOf(&e).Elem())
		checkSame(t, &e)
	}
	// Real shapes.
	for i := range 50 {
		e := testEvent(i)
		checkSame(t, &e)
	}
	// Times json refuses.
	bad := testEvent(1)
	bad.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	checkSame(t, &bad)
}

func FuzzAppendEvent(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(42), uint64(7))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		var e event.Event
		fill(rand.New(rand.NewPCG(a, b)), reflect.ValueOf(&e).Elem())
		checkSame(t, &e)
	})
}

func BenchmarkEncode(b *testing.B) {
	e := testEvent(1)
	e.Raw = "2026-11-25T00:00:00.000000+00:00 host useradd[1000]: new user: name=user1, UID=1001, GID=1001, home=/home/user1, shell=/bin/bash, from=/dev/pts/0"
	e.Changes = []event.Change{{Field: "uid", New: "1001"}, {Field: "shell", New: "/bin/bash"}}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(&e)
		}
	})
	b.Run("appendEvent", func(b *testing.B) {
		for b.Loop() {
			marshalEvent(&e)
		}
	})
}
