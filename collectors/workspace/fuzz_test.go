package workspace

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
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(b, &page) == nil {
			for _, it := range page.Items {
				f.Add([]byte(it))
			}
		}
	}
	m := &mapper{now: func() time.Time { return time.Unix(0, 0) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, ok, err := m.Map(b)
		if err != nil || !ok {
			return
		}
		for i := range evs {
			if err := event.Validate(&evs[i]); err != nil {
				t.Fatalf("mapped an invalid event: %v", err)
			}
		}
	})
}
