package cloudtrail

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
)

func FuzzMap(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var file struct {
			Records []json.RawMessage `json:"Records"`
			Events  []json.RawMessage `json:"Events"`
		}
		if json.Unmarshal(b, &file) == nil {
			for _, r := range append(file.Records, file.Events...) {
				f.Add([]byte(r))
			}
		}
		f.Add(b)
	}
	m := &mapper{now: func() time.Time { return time.Unix(0, 0) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok, err := m.Map(b)
		if err != nil || !ok {
			return
		}
		if err := event.Validate(&ev); err != nil {
			t.Fatalf("mapped an invalid event: %v", err)
		}
	})
}
