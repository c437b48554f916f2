package github

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
		var arr []json.RawMessage
		var wrapped struct {
			Body []json.RawMessage `json:"body"`
		}
		if json.Unmarshal(b, &arr) != nil && json.Unmarshal(b, &wrapped) == nil {
			arr = wrapped.Body
		}
		for _, r := range arr {
			f.Add([]byte(r))
		}
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
