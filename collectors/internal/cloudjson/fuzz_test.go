package cloudjson_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
)

// FuzzRecords: any input is walked without panicking, every record handed
// on is valid JSON, and RedactRaw never lets a password value through.
func FuzzRecords(f *testing.F) {
	files, _ := filepath.Glob("../../*/testdata/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"Records":[{"password":"hunter2"}]}` + "\n[1,2]\n{"))
	keys := []string{"Records", "Events", "value", "items", "entries", "body"}
	f.Fuzz(func(t *testing.T, b []byte) {
		var pc collectors.ProblemCounter
		err := cloudjson.Records(context.Background(), strings.NewReader(string(b)), "fuzz", keys, &pc,
			func(where string, rec json.RawMessage) error {
				if !json.Valid(rec) {
					t.Fatalf("invalid record at %s", where)
				}
				if raw := cloudjson.RedactRaw(rec); strings.Contains(raw, "hunter2") && strings.Contains(strings.ToLower(string(rec)), `"password":"hunter2"`) {
					t.Fatalf("password survived redaction: %s", raw)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
	})
}
