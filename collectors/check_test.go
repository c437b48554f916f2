package collectors

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReadable(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "auth.log")
	empty := filepath.Join(dir, "empty.log")
	missing := filepath.Join(dir, "secure")
	if err := os.WriteFile(present, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		paths []string
		want  string // "" = ok
	}{
		{[]string{present}, ""},
		{[]string{empty}, ""},
		{[]string{present, missing}, ""},
		{[]string{missing}, "none of"},
		{[]string{dir + "/a", dir + "/b"}, "none of"},
	}
	for _, tt := range tests {
		err := CheckReadable(tt.paths...)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.paths, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: %v, want %q", tt.paths, err, tt.want)
		}
	}
}
