package correlate

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// FuzzCorrelate drives a Correlator with an arbitrary sequence of records
// and clock steps, and checks its contract: a position is committed only
// when every earlier record of its collector was delivered (or, for an
// accounts diff, suppressed); positions never go back; every event is
// valid; after Flush every collector's last position is committed and
// nothing is held.
func FuzzCorrelate(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200, 11, 12})
	f.Add([]byte{1, 1, 1, 1, 255, 2, 2, 2, 2, 255, 3})
	keys := []string{"authlog/system", "auditd/local", "accounts/local", "journald/j", "okta/o"}
	users := []string{"alice", "bob", "carol"}
	actions := []event.Action{event.UserCreate, event.GroupMemberAdd, event.PrivilegeGrant, event.UserModify, event.UserLock}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 300 {
			ops = ops[:300]
		}
		c := New(Config{MaxHeld: 4})
		now := t0
		seq := map[string]int{}
		delivered := map[string]bool{} // raw -> seen in an output
		committed := map[string]int{}
		check := func(outs []Output) {
			for _, o := range outs {
				if o.Event != nil {
					if err := event.Validate(o.Event); err != nil {
						t.Fatalf("invalid: %v", err)
					}
					for _, l := range strings.Split(o.Event.Raw, "\n") {
						delivered[l] = true
					}
				}
				for k, p := range o.Positions {
					n, _ := strconv.Atoi(string(p))
					if n < committed[k] {
						t.Fatalf("%s: position went back from %d to %d", k, committed[k], n)
					}
					committed[k] = n
					if !strings.HasPrefix(k, "accounts") {
						for i := 1; i <= n; i++ {
							if !delivered[fmt.Sprintf("%s:%d", k, i)] {
								t.Fatalf("%s: position %d committed before record %d was delivered", k, n, i)
							}
						}
					}
				}
			}
		}
		for _, b := range ops {
			if b >= 200 {
				now = now.Add(time.Duration(b-199) * 500 * time.Millisecond)
				check(c.Expire(now))
				continue
			}
			key := keys[int(b)%len(keys)]
			typ, _, _ := strings.Cut(key, "/")
			seq[key]++
			e := mk(typ, fmt.Sprintf("%s:%d", key, seq[key]), actions[int(b/5)%len(actions)], users[int(b/25)%len(users)], "", now.Add(time.Duration(b%3)*time.Second), int(b%2))
			if e.Action == event.GroupMemberAdd || e.Action == event.PrivilegeGrant {
				e.Target.Group = &event.Group{Name: "sudo"}
				if e.Action == event.PrivilegeGrant {
					e.Target.Privileges = []string{"group:sudo"}
				}
			}
			e.Raw = fmt.Sprintf("%s:%d", key, seq[key])
			check(c.Add(now, key, []collectors.Record{{Event: e, Position: collectors.Position(strconv.Itoa(seq[key]))}}))
		}
		check(c.Flush(now))
		if c.Held() != 0 {
			t.Fatal("held after Flush")
		}
		for k, n := range seq {
			if committed[k] != n {
				t.Fatalf("%s: committed %d of %d after Flush", k, committed[k], n)
			}
		}
	})
}
