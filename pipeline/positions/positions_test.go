package positions

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/provtrail/provtrail/collectors"
)

func TestCommitReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "positions.json")
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Get("authlog/system"); got != nil {
		t.Fatalf("empty store gave %q", got)
	}
	s.Set(map[string]collectors.Position{"authlog/system": []byte("ino=1 off=10"), "ldap/main": []byte{0, 1, 2}}, 1)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Set(map[string]collectors.Position{"authlog/system": []byte("ino=1 off=20")}, 2)
	// An older spool entry never moves a position back.
	s.Set(map[string]collectors.Position{"authlog/system": []byte("ino=1 off=5")}, 1)
	// Not committed: a crash now keeps the old value.
	s2, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s2.Get("authlog/system")); got != "ino=1 off=10" {
		t.Fatalf("uncommitted position leaked: %q", got)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s3.Get("authlog/system")); got != "ino=1 off=20" {
		t.Fatalf("after commit: %q", got)
	}
	if e := s3.All()["authlog/system"]; e.Index != 2 {
		t.Fatalf("index = %d, want 2", e.Index)
	}
	if got := s3.Get("ldap/main"); string(got) != "\x00\x01\x02" {
		t.Fatalf("binary position: %q", got)
	}
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*tmp*"))
	if len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

func TestBadFile(t *testing.T) {
	for name, content := range map[string]string{
		"not json":      "{",
		"wrong version": `{"version":9,"positions":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "positions.json")
			os.WriteFile(p, []byte(content), 0o600)
			if _, err := Open(p); err == nil {
				t.Fatal("Open accepted a bad file")
			}
		})
	}
}
