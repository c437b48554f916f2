package cloudtrail

import (
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/windowtest"
)

func FuzzMap(f *testing.F) {
	windowtest.SeedRecords(f, "testdata/*.json", "Records", "Events")
	m := &mapper{now: func() time.Time { return time.Unix(0, 0) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok, err := m.Map(b)
		if err != nil || !ok {
			return
		}
		windowtest.ValidEvents(t, ev)
	})
}
