package alerts

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// bigState is rule state like central's worst case: a sequence rule with
// 500 keys of 60 pending events each, and a threshold with 5000.
func bigState() *engineState {
	st := &engineState{Windows: map[string]map[string][]EventRef{"seq": {}, "burst": {}}}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for k := range 500 {
		var refs []EventRef
		for i := range 60 {
			refs = append(refs, EventRef{ID: fmt.Sprintf("bench-%d-%d-%d", i%8, i/8, k), LogIndex: int64(k + i), Time: t0.Add(time.Duration(i*60+k) * time.Second)})
		}
		st.Windows["seq"][fmt.Sprintf("user%d|wheel", k)] = refs
	}
	var refs []EventRef
	for i := range 5000 {
		refs = append(refs, EventRef{ID: fmt.Sprintf("bench-%d", i), LogIndex: int64(i), Time: t0.Add(time.Duration(i) * time.Second)})
	}
	st.Windows["burst"]["root"] = refs
	through := int64(80)
	st.Through = &through
	return st
}

func BenchmarkEncodeState(b *testing.B) {
	st := bigState()
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(st); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeStateFast: every key changed since the last save (the
// worst case), and none did.
func BenchmarkEncodeStateFast(b *testing.B) {
	st := bigState()
	rules := compiledOf(st)
	for _, changed := range []bool{true, false} {
		name := "unchanged"
		if changed {
			name = "changed"
		}
		b.Run(name, func(b *testing.B) {
			var buf []byte
			for b.Loop() {
				if changed {
					for _, c := range rules {
						for _, l := range c.win {
							l.encOK = false
						}
					}
				}
				var err error
				if buf, err = appendWindows(buf[:0], rules, st.Through); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
