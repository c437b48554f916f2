package central

import (
	"errors"
	"reflect"
	"testing"

	"github.com/provtrail/provtrail/central/entitlements"
)

func testChanges() []entChange {
	h := func(user string) entitlements.Holding {
		return entitlements.Holding{Key: entitlements.Key{System: "linux", Scope: "host-1", Kind: "group", Name: "wheel", User: user}, GrantedBy: "root", EventID: "e-" + user, LogIndex: 1 << 40}
	}
	return []entChange{
		{time: 1_700_000_000_000_000_000, eventID: "e-alice", c: entitlements.Change{Op: entitlements.Grant, Holding: h("alice")}},
		{time: -5, eventID: "e-bob", c: entitlements.Change{Op: entitlements.Revoke, Holding: h("bob")}},
		{time: 0, eventID: "", c: entitlements.Change{Op: entitlements.RevokeName, Holding: entitlements.Holding{}}},
	}
}

func TestEntitlementHistoryCodec(t *testing.T) {
	in := testChanges()
	buf := appendChanges(nil, in)
	var out []entChange
	if err := decodeChanges(buf, func(tm int64, c entitlements.Change) {
		out = append(out, entChange{time: tm, eventID: c.Holding.EventID, c: c})
	}); err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i].c.Holding.EventID = in[i].eventID
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip\n%+v\nwant\n%+v", out, in)
	}
	// Every cut short encoding is an error, never a panic or a change
	// made up of what follows.
	for n := 1; n < len(buf); n++ {
		changes := 0
		err := decodeChanges(buf[:n], func(int64, entitlements.Change) { changes++ })
		if err == nil && changes == len(in) {
			t.Fatalf("%d of %d bytes decode to every change", n, len(buf))
		}
		if err != nil && !errors.Is(err, errBadHistory) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
}

func FuzzDecodeEntitlementHistory(f *testing.F) {
	f.Add(appendChanges(nil, testChanges()))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		var got []entChange
		if err := decodeChanges(b, func(tm int64, c entitlements.Change) {
			got = append(got, entChange{time: tm, eventID: c.Holding.EventID, c: c})
		}); err != nil {
			return
		}
		// What decodes re-encodes to the same bytes' meaning.
		var again []entChange
		if err := decodeChanges(appendChanges(nil, got), func(tm int64, c entitlements.Change) {
			again = append(again, entChange{time: tm, eventID: c.Holding.EventID, c: c})
		}); err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoding: %v\n%+v\n%+v", err, again, got)
		}
	})
}
