// Package perms checks that secret files (private keys, passphrase files,
// configuration) are private to the account the daemon runs as before the
// daemon uses them, and says how to fix them when they are not, in the
// spirit of OpenSSH's StrictModes.
//
// A file passes CheckPrivate when:
//   - it is a regular file (after following symlinks);
//   - no group or other permission bit is set (mode 0600 or 0400);
//   - it is owned by the effective user or by root, and the process can
//     read it (a root-owned 0600 file passes for a root daemon or one with
//     CAP_DAC_READ_SEARCH, and is refused, with the chown to run, otherwise);
//   - no directory on the way to it can be changed by anyone else: each is
//     owned by root or the effective user and not writable by group or
//     others, unless it is sticky (/tmp).
package perms

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Error says what is wrong with a file and the command that fixes it.
type Error struct {
	Path    string
	Problem string
	// Fix is a shell command (or short instruction) that makes the file
	// pass, for the operator to run.
	Fix string
}

func (e *Error) Error() string {
	if e.Fix == "" {
		return fmt.Sprintf("%s: %s", e.Path, e.Problem)
	}
	return fmt.Sprintf("%s: %s; fix with: %s", e.Path, e.Problem, e.Fix)
}

// CheckPrivate returns an *Error when path is not private to the process's
// effective user (see the package documentation) or cannot be read by it,
// and a wrapped fs error when it cannot be examined at all (missing file).
func CheckPrivate(path string) error {
	uid := os.Geteuid()
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("perms: %s: %w", path, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("perms: %w", err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("perms: %w", err)
	}
	shown := path
	if real != abs {
		shown = fmt.Sprintf("%s (-> %s)", path, real)
	}
	if !fi.Mode().IsRegular() {
		return &Error{Path: shown, Problem: fmt.Sprintf("is not a regular file (%s)", fi.Mode().Type())}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("perms: %s: no owner information on this platform", path)
	}
	owner := int(st.Uid)
	perm := fi.Mode().Perm()
	quoted := shellQuote(real)
	var problems, fixes []string
	if owner != uid && owner != 0 {
		problems = append(problems, fmt.Sprintf("is owned by %s, not by %s (the account provtrail runs as) or root", userName(owner), userName(uid)))
		fixes = append(fixes, fmt.Sprintf("chown %s %s", userName(uid), quoted))
	}
	switch {
	case perm&0o077 != 0:
		problems = append(problems, fmt.Sprintf("has mode %04o: %s can %s it", perm, who(perm), what(perm)))
		fixes = append(fixes, fmt.Sprintf("chmod %s %s", privateMode(perm), quoted))
	case perm&0o400 == 0:
		problems = append(problems, fmt.Sprintf("has mode %04o: not even its owner can read it", perm))
		fixes = append(fixes, fmt.Sprintf("chmod 600 %s", quoted))
	}
	if len(problems) > 0 {
		return &Error{Path: shown, Problem: strings.Join(problems, " and "), Fix: strings.Join(fixes, " && ")}
	}
	// Root-owned and private: fine for a root daemon or one holding
	// CAP_DAC_READ_SEARCH; anyone else cannot read it, so say so now.
	f, err := os.Open(real)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return &Error{Path: shown,
				Problem: fmt.Sprintf("is private to %s, so %s cannot read it", userName(owner), userName(uid)),
				Fix:     fmt.Sprintf("chown %s %s", userName(uid), quoted)}
		}
		return fmt.Errorf("perms: %w", err)
	}
	f.Close()
	if err := checkDirs(filepath.Dir(real), uid); err != nil {
		return err
	}
	return nil
}

// checkDirs walks from dir up to / and refuses a directory someone else
// could use to swap the file.
func checkDirs(dir string, uid int) error {
	for {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("perms: %w", err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner := int(st.Uid)
			perm := fi.Mode().Perm()
			sticky := fi.Mode()&fs.ModeSticky != 0
			if owner != 0 && owner != uid {
				return &Error{Path: dir,
					Problem: fmt.Sprintf("is owned by %s, who could replace the files in it", userName(owner)),
					Fix:     fmt.Sprintf("chown root %s", shellQuote(dir))}
			}
			if perm&0o022 != 0 && !sticky {
				return &Error{Path: dir,
					Problem: fmt.Sprintf("has mode %04o: %s can replace the files in it", perm, who(perm&0o022)),
					Fix:     fmt.Sprintf("chmod go-w %s", shellQuote(dir))}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil
		}
		dir = parent
	}
}

// who names the classes that have any permission in perm.
func who(perm fs.FileMode) string {
	switch {
	case perm&0o070 != 0 && perm&0o007 != 0:
		return "its group and everyone else"
	case perm&0o070 != 0:
		return "its group"
	default:
		return "everyone"
	}
}

// what names the permissions others have.
func what(perm fs.FileMode) string {
	var parts []string
	if perm&0o044 != 0 {
		parts = append(parts, "read")
	}
	if perm&0o022 != 0 {
		parts = append(parts, "change")
	}
	if perm&0o011 != 0 {
		parts = append(parts, "execute")
	}
	return strings.Join(parts, " and ")
}

// privateMode keeps the owner's read-only choice.
func privateMode(perm fs.FileMode) string {
	if perm&0o200 == 0 {
		return "400"
	}
	return "600"
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

// shellQuote makes p safe to paste into a shell.
func shellQuote(p string) string {
	if p != "" && strings.IndexFunc(p, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@,=", r))
	}) < 0 {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}

// IsProblem reports whether err is a permission problem (as opposed to a
// missing file), for callers that treat the two differently.
func IsProblem(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
