package cloudjson_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
)

func TestRecords(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		problems int
	}{
		{"array", `[{"a":1},{"a":2}]`, []string{`{"a":1}`, `{"a":2}`}, 0},
		{"wrapped", `{"_source":"x","Records":[{"a":1}],"NextToken":"t"}`, []string{`{"a":1}`}, 0},
		{"wrapped null", `{"Records":null}`, nil, 0},
		{"single", `{"a":1,"Records":"not an array"}`, []string{`{"a":1,"Records":"not an array"}`}, 0},
		{"ndjson", "{\"a\":1}\n{\"a\":2}\n", []string{`{"a":1}`, `{"a":2}`}, 0},
		{"array of pages", `[{"Records":[{"a":1}]},[{"a":2}]]`, []string{`{"Records":[{"a":1}]}`, `{"a":2}`}, 0},
		{"scalar", `42`, nil, 1},
		{"torn", `{"a":1}` + "\n" + `{"a":`, []string{`{"a":1}`}, 1},
		{"rejected", `[{"bad":1},{"a":3}]`, []string{`{"a":3}`}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var pc collectors.ProblemCounter
			err := cloudjson.Records(context.Background(), strings.NewReader(tc.in), "in", []string{"Records"}, &pc,
				func(where string, rec json.RawMessage) error {
					if strings.Contains(string(rec), "bad") {
						return errors.New("bad record")
					}
					got = append(got, cloudjson.Raw(rec))
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || pc.Count() != int64(tc.problems) {
				t.Fatalf("got %q (%d problems), want %q (%d)", got, pc.Count(), tc.want, tc.problems)
			}
		})
	}
}

func TestRecordsStop(t *testing.T) {
	n := 0
	err := cloudjson.Records(context.Background(), strings.NewReader(`[{},{},{}]`), "in", nil, nil,
		func(string, json.RawMessage) error {
			n++
			return cloudjson.ErrStop
		})
	if !errors.Is(err, cloudjson.ErrStop) || n != 1 {
		t.Fatalf("err %v after %d", err, n)
	}
}

func TestEmail(t *testing.T) {
	for in, want := range map[string]string{"a@b.c": "a@b.c", "a b@c": "", "@x": "", "x@": "", "user:a@b": ""} {
		if got := cloudjson.Email(in); got != want {
			t.Errorf("Email(%q) = %q", in, got)
		}
	}
}

func TestRedactRaw(t *testing.T) {
	in := `{"requestParameters":{"userName":"bob","password":"hunter2","nested":[{"SecretAccessKey":"abc"}]},"b":1}`
	got := cloudjson.RedactRaw([]byte(in))
	if strings.Contains(got, "hunter2") || strings.Contains(got, `"abc"`) || !strings.Contains(got, `"userName":"bob"`) {
		t.Fatalf("RedactRaw = %s", got)
	}
	plain := `{"z":1,"a":2}`
	if got := cloudjson.RedactRaw([]byte(plain)); got != plain {
		t.Fatalf("order changed: %s", got)
	}
}
