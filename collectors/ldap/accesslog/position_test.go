package accesslog

import (
	"testing"

	"github.com/provtrail/provtrail/collectors"
)

func TestPositionMultiProvider(t *testing.T) {
	const (
		a1 = "20261125100000.000001Z#000000#001#000000"
		a2 = "20261125100005.000001Z#000000#001#000000"
		b1 = "20261125100003.000001Z#000000#002#000000"
		b0 = "20261125090000.000001Z#000000#002#000000"
	)
	p := position{V: 1, CSN: map[string]string{"001": a2, "002": b1}}
	for csn, want := range map[string]int{a1: -1, a2: -1, b0: -1, b1: -1,
		"20261125100006.000001Z#000000#001#000000": 0, "20261125100004.000001Z#000000#002#000000": 0,
		"20261125100000.000001Z#000000#003#000000": 0, "": 0} {
		if got := p.emitted(csn); got != want {
			t.Errorf("emitted(%q) = %d, want %d", csn, got, want)
		}
	}
	if c := string(p.syncCookie()); c != "rid=000,csn="+a2+";"+b1 {
		t.Errorf("cookie %q", c)
	}
	p.Last, p.Part = b1, 2
	if got := p.emitted(b1); got != 2 {
		t.Errorf("partial entry: %d", got)
	}
	if p.syncCookie() != nil {
		t.Error("a cookie past a partly emitted entry would skip its rest")
	}
	p.Cookie = []byte("rid=000,csn=x")
	q, err := decodePosition(p.encode())
	if err != nil || string(q.Cookie) != "rid=000,csn=x" || q.CSN["002"] != b1 || q.Part != 2 {
		t.Fatalf("round trip: %+v %v", q, err)
	}
	for _, bad := range []string{"{", `{"v":2}`} {
		if _, err := decodePosition(collectors.Position(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
