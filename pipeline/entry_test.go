package pipeline

import (
	"bytes"
	"testing"

	"github.com/provtrail/provtrail/collectors"
)

func TestEntryRoundTrip(t *testing.T) {
	cases := []map[string]collectors.Position{
		nil,
		{"authlog/system": []byte("dev=1 ino=2 off=300")},
		{"a/b": nil, "ldap/main": {0, 0xff}, "z/z": []byte("x")},
	}
	for _, pos := range cases {
		batch := []byte("PTB1 pretend batch")
		e := encodeEntry(batch, pos)
		gb, gp, err := decodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, batch) || len(gp) != len(pos) {
			t.Fatalf("round trip: %q %v", gb, gp)
		}
		for k, v := range pos {
			if !bytes.Equal(gp[k], v) {
				t.Fatalf("position %s = %q, want %q", k, gp[k], v)
			}
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry([]byte("b"), map[string]collectors.Position{"k/n": []byte("p")}))
	f.Add(encodeEntry([]byte("batch"), nil))
	f.Add([]byte("PTE1\x00\x00\x00\x01x\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, p, err := decodeEntry(data)
		if err != nil {
			return
		}
		again := encodeEntry(b, p)
		b2, p2, err := decodeEntry(again)
		if err != nil || !bytes.Equal(b, b2) || len(p) != len(p2) {
			t.Fatalf("re-encode differs")
		}
	})
}
