package okta

import (
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
		f.Add(b)
	}
	f.Add([]byte(`{"uuid":"u","eventType":"group.privilege.grant","published":"2024-01-01T00:00:00Z","target":[{"type":"UserGroup","id":"g"}]}`))
	m := &mapper{now: func() time.Time { return time.Unix(0, 0) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok, err := m.Map(b)
		if err != nil || !ok {
			return
		}
		if err := event.Validate(&ev); err != nil {
			t.Fatalf("mapped an invalid event: %v", err)
		}
		if ev.Source.EventID == "" {
			t.Fatal("no source event id")
		}
	})
}
