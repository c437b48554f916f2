package perms

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const nobody = 65534

func write(t *testing.T, path string, mode fs.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("-----BEGIN PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	return path
}

func TestCheckPrivateModes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		mode    fs.FileMode
		wantFix string // "" = passes
		problem string
	}{
		{0o600, "", ""},
		{0o400, "", ""},
		{0o640, "chmod 600", "its group can read it"},
		{0o644, "chmod 600", "its group and everyone else can read it"},
		{0o604, "chmod 600", "everyone can read it"},
		{0o620, "chmod 600", "its group can change it"},
		{0o602, "chmod 600", "everyone can change it"},
		{0o666, "chmod 600", "can read and change it"},
		{0o440, "chmod 400", "its group can read it"},
		{0o610, "chmod 600", "its group can execute it"},
		{0o200, "chmod 600", "not even its owner can read it"},
		{0o000, "chmod 600", "not even its owner can read it"},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			p := write(t, filepath.Join(dir, "key-"+strings.TrimLeft(tt.mode.String(), "-")), tt.mode)
			err := CheckPrivate(p)
			if tt.wantFix == "" {
				if err != nil {
					t.Fatalf("mode %04o refused: %v", tt.mode, err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || !IsProblem(err) {
				t.Fatalf("mode %04o: err = %v, want *Error", tt.mode, err)
			}
			if want := tt.wantFix + " " + p; pe.Fix != want {
				t.Errorf("fix = %q, want %q", pe.Fix, want)
			}
			if !strings.Contains(pe.Problem, tt.problem) {
				t.Errorf("problem = %q, want it to say %q", pe.Problem, tt.problem)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "fix with: "+pe.Fix) {
				t.Errorf("message %q lacks the path or the fix", err)
			}
		})
	}
}

func TestCheckPrivateFollowsSymlinksAndRefusesOddFiles(t *testing.T) {
	dir := t.TempDir()
	private := write(t, filepath.Join(dir, "private.key"), 0o600)
	public := write(t, filepath.Join(dir, "public.key"), 0o644)
	toPrivate := filepath.Join(dir, "link-private")
	toPublic := filepath.Join(dir, "link-public")
	for old, link := range map[string]string{private: toPrivate, public: toPublic} {
		if err := os.Symlink(old, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckPrivate(toPrivate); err != nil {
		t.Errorf("symlink to a private file refused: %v", err)
	}
	err := CheckPrivate(toPublic)
	if !IsProblem(err) || !strings.Contains(err.Error(), "-> "+public) || !strings.Contains(err.Error(), "chmod 600 "+public) {
		t.Errorf("symlink to a public file: %v", err)
	}
	if err := CheckPrivate(dir); !IsProblem(err) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	err = CheckPrivate(filepath.Join(dir, "missing.key"))
	if err == nil || IsProblem(err) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want a wrapped ErrNotExist that is not a permission problem", err)
	}
	odd := write(t, filepath.Join(dir, "it's mine.key"), 0o644)
	if err := CheckPrivate(odd); !IsProblem(err) || !strings.Contains(err.Error(), `chmod 600 '`+dir+`/it'\''s mine.key'`) {
		t.Errorf("path needing quotes: %v", err)
	}
}

func TestCheckPrivateDirectories(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		mode    fs.FileMode
		wantFix string
	}{
		{0o700, ""},
		{0o755, ""},
		{0o775, "chmod go-w"},
		{0o757, "chmod go-w"},
		{0o777 | fs.ModeSticky, ""}, // like /tmp: others cannot replace our file
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			dir := filepath.Join(base, strings.ReplaceAll(tt.mode.String(), "-", "_"))
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			key := write(t, filepath.Join(dir, "k"), 0o600)
			err := CheckPrivate(key)
			if tt.wantFix == "" {
				if err != nil {
					t.Fatalf("refused in a %v directory: %v", tt.mode, err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Path != dir || pe.Fix != tt.wantFix+" "+dir {
				t.Fatalf("err = %v, want %q on %s", err, tt.wantFix, dir)
			}
		})
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing file owners needs root")
	}
}

func TestCheckPrivateOwner(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	theirs := write(t, filepath.Join(dir, "theirs.key"), 0o600)
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	err := CheckPrivate(theirs)
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Problem, "is owned by") || pe.Fix != "chown root "+theirs {
		t.Fatalf("file owned by another user: %v", err)
	}
	both := write(t, filepath.Join(dir, "both.key"), 0o644)
	if err := os.Chown(both, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(both); !errors.As(err, &pe) || pe.Fix != "chown root "+both+" && chmod 600 "+both {
		t.Fatalf("wrong owner and mode: %v", err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	key := write(t, filepath.Join(sub, "k"), 0o600)
	if err := os.Chown(sub, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := CheckPrivate(key); !errors.As(err, &pe) || pe.Path != sub || pe.Fix != "chown root "+sub {
		t.Fatalf("directory owned by another user: %v", err)
	}
}

// TestCheckPrivateAsServiceUser runs CheckPrivate in a child process as an
// unprivileged user, the way the packaged daemon runs: its own 0600 file
// passes, a root-owned 0600 file it cannot read is refused with a chown.
func TestCheckPrivateAsServiceUser(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	// The child must reach the files: open up the test's directories.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	own := write(t, filepath.Join(dir, "own.key"), 0o600)
	if err := os.Chown(own, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	rootOnly := write(t, filepath.Join(dir, "root.key"), 0o600)
	bin := copyTestBinary(t, dir)
	for _, tt := range []struct {
		path, want string
	}{
		{own, "OK"},
		{rootOnly, "PROBLEM " + rootOnly + ": is private to root, so nobody cannot read it; fix with: chown nobody " + rootOnly},
	} {
		cmd := exec.Command(bin, "-test.run=^TestHelperCheck$")
		cmd.Env = append(os.Environ(), "PERMS_HELPER_PATH="+tt.path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as nobody: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "RESULT "+tt.want+"\n") {
			t.Errorf("%s as nobody: got\n%s\nwant RESULT %s", tt.path, out, tt.want)
		}
	}
}

// TestHelperCheck is the child of TestCheckPrivateAsServiceUser.
func TestHelperCheck(t *testing.T) {
	path := os.Getenv("PERMS_HELPER_PATH")
	if path == "" {
		t.Skip("helper process only")
	}
	err := CheckPrivate(path)
	switch {
	case err == nil:
		os.Stdout.WriteString("RESULT OK\n")
	case IsProblem(err):
		os.Stdout.WriteString("RESULT PROBLEM " + err.Error() + "\n")
	default:
		os.Stdout.WriteString("RESULT ERROR " + err.Error() + "\n")
	}
}

func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(dir, "perms.test")
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, src); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// BenchmarkCheckPrivate: the cost of one check at start-up or reload
// (stat of the file and each parent directory, one open).
func BenchmarkCheckPrivate(b *testing.B) {
	p := filepath.Join(b.TempDir(), "k")
	if err := os.WriteFile(p, []byte("k"), 0o600); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckPrivate(p); err != nil {
			b.Fatal(err)
		}
	}
}
