package gcpaudit

import (
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/event"
)

func FuzzMap(f *testing.F) {
	windowtest.SeedRecords(f, "testdata/*.json", "entries")
	m := &mapper{now: func() time.Time { return time.Unix(0, 0) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, ok, err := m.Map(b)
		if err != nil || !ok {
			return
		}
		seen := map[string]bool{}
		for i := range evs {
			if err := event.Validate(&evs[i]); err != nil {
				t.Fatalf("mapped an invalid event: %v", err)
			}
			if seen[evs[i].ID] {
				t.Fatal("two events of one entry share an id")
			}
			seen[evs[i].ID] = true
		}
	})
}
