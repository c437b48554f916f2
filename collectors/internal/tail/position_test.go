package tail

import (
	"encoding/json"
	"testing"
)

// skipEntry is an Entry with a member of its own and no AppendJSON, so
// Encode takes the reflective path for it.
type skipEntry struct {
	FilePos
	Skip []string `json:"skip,omitempty"`
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name  string
		files []FilePos
	}{
		{"none", nil},
		{"path only", []FilePos{{Path: "/var/log/auth.log"}}},
		{"full", []FilePos{{Path: "/var/log/auth.log", Device: 2049, Inode: 9978609,
			Fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", FingerprintLen: 1024,
			Offset: 81234, ContextOffset: 80990}}},
		{"two files", []FilePos{{Path: "/var/log/secure", Offset: 1, ContextOffset: 1}, {Path: "/var/log/auth.log", Inode: 7}}},
		{"escapes", []FilePos{{Path: "/var/log/\"odd\"\\dir/<a>&b\n\tälog", Offset: 3}}},
		{"control and invalid utf-8", []FilePos{{Path: "/x/\x00\x7f\xff", Offset: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertSameAsJSON(t, tt.files)
		})
	}
}

// assertSameAsJSON checks that the fast encoding of files decodes to what
// encoding/json's does, and is byte-identical when json escapes nothing.
func assertSameAsJSON(t *testing.T, files []FilePos) {
	t.Helper()
	fast := Encode(files)
	slow := encodeReflect(files)
	var a, b Position[FilePos]
	if err := json.Unmarshal(fast, &a); err != nil {
		t.Fatalf("fast encoding is not JSON: %v\n%s", err, fast)
	}
	if err := json.Unmarshal(slow, &b); err != nil {
		t.Fatal(err)
	}
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if string(aj) != string(bj) {
		t.Fatalf("decoded differently:\nfast %s\njson %s", fast, slow)
	}
	if json.Valid(fast) && string(fast) != string(slow) {
		// Same content, different spelling is only allowed for escapes.
		for _, f := range files {
			if q := AppendJSONString(nil, f.Path); string(q) != mustMarshal(f.Path) {
				t.Fatalf("path %q spelled %s, json %s", f.Path, q, mustMarshal(f.Path))
			}
		}
		t.Fatalf("bytes differ:\nfast %s\njson %s", fast, slow)
	}
}

func mustMarshal(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestEncodeReflectiveEntry(t *testing.T) {
	in := []skipEntry{{FilePos: FilePos{Path: "/a", Offset: 5, ContextOffset: 2}, Skip: []string{"id1"}}}
	got, err := Decode[skipEntry](Encode(in))
	if err != nil {
		t.Fatal(err)
	}
	if e := got["/a"]; e.Offset != 5 || e.ContextOffset != 2 || len(e.Skip) != 1 || e.Skip[0] != "id1" {
		t.Fatalf("round trip: %+v", got)
	}
}

func FuzzEncodePosition(f *testing.F) {
	f.Add("/var/log/auth.log", "9f86d0", uint64(2049), uint64(9978609), int64(81234), int64(80990))
	f.Add("/x/\"\\<>&\x00\xff", "", uint64(0), uint64(0), int64(0), int64(0))
	f.Fuzz(func(t *testing.T, path, fp string, dev, ino uint64, off, ctxOff int64) {
		assertSameAsJSON(t, []FilePos{{Path: path, Device: dev, Inode: ino, Fingerprint: fp, FingerprintLen: len(fp) % 1025, Offset: off, ContextOffset: ctxOff}})
	})
}

func BenchmarkEncodePosition(b *testing.B) {
	files := []FilePos{{Path: "/var/log/auth.log", Device: 2049, Inode: 9978609,
		Fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", FingerprintLen: 1024,
		Offset: 81234, ContextOffset: 80990}}
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Encode(files)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeReflect(files)
		}
	})
}
