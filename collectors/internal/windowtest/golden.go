package windowtest

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// Golden compares the events of recs, as NDJSON, with the file at path,
// rewriting it instead when update is set. Every event must also pass
// event.Validate.
func Golden(t *testing.T, recs []collectors.Record, path string, update bool) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i := range recs {
		if err := event.Validate(&recs[i].Event); err != nil {
			t.Errorf("event %d of %s is invalid: %v", i, path, err)
		}
		if err := enc.Encode(recs[i].Event); err != nil {
			t.Fatal(err)
		}
	}
	if update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("%s differs (run with -update to accept):\ngot:\n%s\nwant:\n%s", path, buf.Bytes(), want)
	}
}
