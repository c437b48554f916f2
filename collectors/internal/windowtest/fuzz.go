package windowtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/event"
)

// SeedRecords adds to f, for every file matching pattern, the file itself
// and every record cloudjson.Records finds in it (keys as there), so that
// a mapper's fuzzing starts from real records as well as whole exports.
func SeedRecords(f *testing.F, pattern string, keys ...string) {
	f.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files match %q (%v)", pattern, err)
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		err = cloudjson.Records(context.Background(), bytes.NewReader(b), path, keys, nil, func(_ string, rec json.RawMessage) error {
			f.Add([]byte(rec))
			return nil
		})
		if err != nil {
			f.Fatal(err)
		}
	}
}

// ValidEvents fails t unless every event passes event.Validate.
func ValidEvents(t *testing.T, evs ...event.Event) {
	t.Helper()
	for i := range evs {
		if err := event.Validate(&evs[i]); err != nil {
			t.Fatalf("mapped an invalid event: %v", err)
		}
	}
}
