package okta

import (
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/windowtest"
)

func FuzzMap(f *testing.F) {
	windowtest.SeedRecords(f, "testdata/*.json")
	f.Add([]byte(`{"uuid":"u","eventType":"group.privilege.grant","published":"2024-01-01T00:00:00Z","target":[{"type":"UserGroup","id":"g"}]}`))
	m := &mapper{now: func() time.Time { return time.Unix(0, 0) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok, err := m.Map(b)
		if err != nil || !ok {
			return
		}
		windowtest.ValidEvents(t, ev)
		if ev.Source.EventID == "" {
			t.Fatal("no source event id")
		}
	})
}
