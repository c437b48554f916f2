package accounts

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/event"
)

// Bounds on what one snapshot reads: account databases larger than this are
// not plausible on a host and are refused rather than read into memory.
const (
	MaxFileSize     = 32 << 20
	MaxLineLength   = 64 << 10
	MaxSudoersFiles = 1024
)

// Password states. They describe a password field without revealing it.
const (
	PassSet      = "set"      // a crypt(3) hash
	PassEmpty    = "empty"    // no password at all: login without one
	PassDisabled = "disabled" // "*", "!", "!!", "x"...: no password can match
	PassNone     = ""         // no shadow entry
)

// User is one account as passwd and shadow describe it. PassDigest is a
// keyed HMAC of the password hash: it shows that the hash changed and is
// useless for guessing the password without the host's key. It is kept in
// the state dir only and never placed in an event.
type User struct {
	Name  string `json:"name"`
	UID   int64  `json:"uid"`
	GID   int64  `json:"gid"`
	GECOS string `json:"gecos,omitempty"`
	Home  string `json:"home,omitempty"`
	Shell string `json:"shell,omitempty"`

	Shadow     bool   `json:"shadow,omitempty"`
	PassState  string `json:"pass_state,omitempty"`
	Locked     bool   `json:"locked,omitempty"`
	PassDigest string `json:"pass_digest,omitempty"`
	LastChange string `json:"last_change,omitempty"`
	MinAge     string `json:"min_age,omitempty"`
	MaxAge     string `json:"max_age,omitempty"`
	Warn       string `json:"warn,omitempty"`
	Inactive   string `json:"inactive,omitempty"`
	Expire     string `json:"expire,omitempty"`

	// PasswdLine and ShadowLine are the entries' lines with the password
	// field replaced by event.Redacted, for Event.Raw.
	PasswdLine string `json:"passwd_line,omitempty"`
	ShadowLine string `json:"shadow_line,omitempty"`
}

// Group is one group as group and gshadow describe it.
type Group struct {
	Name    string   `json:"name"`
	GID     int64    `json:"gid"`
	Members []string `json:"members,omitempty"`
	Admins  []string `json:"admins,omitempty"`

	PassState  string `json:"pass_state,omitempty"`
	PassDigest string `json:"pass_digest,omitempty"`

	GroupLine   string `json:"group_line,omitempty"`
	GshadowLine string `json:"gshadow_line,omitempty"`
}

// Snapshot is the account state of one root at one moment.
type Snapshot struct {
	Users  map[string]*User  `json:"users"`
	Groups map[string]*Group `json:"groups"`
	// Sudoers maps a file (relative to the root, "etc/sudoers",
	// "etc/sudoers.d/ops") to its statements, normalised.
	Sudoers map[string][]string `json:"sudoers,omitempty"`
	// MTimes holds each file's modification time, used as the time of the
	// changes found in it. Not part of the content comparison.
	MTimes map[string]time.Time `json:"mtimes,omitempty"`
}

// problemFunc receives one malformed input line.
type problemFunc func(where, reason, sample string)

// reader takes snapshots of one root.
type reader struct {
	root    string
	key     []byte
	sudoers bool
	problem problemFunc
}

// Relative paths of the files a snapshot reads.
const (
	relPasswd   = "etc/passwd"
	relShadow   = "etc/shadow"
	relGroup    = "etc/group"
	relGshadow  = "etc/gshadow"
	relSudoers  = "etc/sudoers"
	relSudoersD = "etc/sudoers.d"
)

func (r *reader) path(rel string) string { return filepath.Join(r.root, filepath.FromSlash(rel)) }

// take reads every file. A missing file is an empty database (a fresh
// root); any other read error fails the snapshot so that a transient error
// is never mistaken for every account being deleted.
func (r *reader) take() (*Snapshot, error) {
	s := &Snapshot{
		Users:  map[string]*User{},
		Groups: map[string]*Group{},
		MTimes: map[string]time.Time{},
	}
	type step struct {
		rel   string
		parse func(*Snapshot, []byte, string)
	}
	for _, st := range []step{
		{relPasswd, r.parsePasswd},
		{relShadow, r.parseShadow},
		{relGroup, r.parseGroup},
		{relGshadow, r.parseGshadow},
	} {
		data, mtime, err := readFile(r.path(st.rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		s.MTimes[st.rel] = mtime
		st.parse(s, data, r.path(st.rel))
	}
	if r.sudoers {
		if err := r.readSudoers(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func readFile(path string) ([]byte, time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, time.Time{}, fmt.Errorf("%s is larger than %d bytes", path, MaxFileSize)
	}
	return data, fi.ModTime().UTC(), nil
}

// eachLine calls fn for every non-blank, non-comment line with its 1-based
// number. Over-long lines are reported and skipped.
func eachLine(data []byte, path string, problem problemFunc, fn func(n int, line string)) {
	n := 0
	for len(data) > 0 {
		n++
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i], data[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > MaxLineLength {
			problem(fmt.Sprintf("%s:%d", path, n), "line longer than the limit", "")
			continue
		}
		t := strings.TrimSpace(string(line))
		if t == "" || t[0] == '#' {
			continue
		}
		fn(n, string(line))
	}
}

// nisCompat reports NIS compat entries ("+", "+name", "-@netgroup"), which
// are not local accounts.
func nisCompat(line string) bool { return line[0] == '+' || line[0] == '-' }

func validName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c == ':' || c == ',' || c == 0x7f {
			return false
		}
	}
	return true
}

func parseID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0 && n <= 1<<32-1
}

// redactLine replaces field 1 (the password) of a colon-separated line.
func redactLine(fields []string) string {
	out := slices.Clone(fields)
	if len(out) > 1 && out[1] != "" && out[1] != "x" {
		out[1] = event.Redacted
	}
	return strings.Join(out, ":")
}

// sample is what a problem report may show of a malformed line: the first
// field only, since any other field may be a password hash.
func sample(line string) string {
	name, _, _ := strings.Cut(line, ":")
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// passField classifies a password field and digests the hash under key.
// The lock marker "!" is stripped before digesting, so that locking and
// unlocking do not look like a password change.
func (r *reader) passField(kind, v string) (state string, locked bool, digest string) {
	rest := v
	if strings.HasPrefix(rest, "!") {
		locked = true
		rest = strings.TrimLeft(rest, "!")
	}
	switch {
	case rest == "":
		state = PassEmpty
		if locked {
			// "!" alone: no password was ever set (Debian's useradd).
			state, locked = PassDisabled, false
		}
	case strings.HasPrefix(rest, "$") || len(rest) == 13 && !strings.ContainsAny(rest, "*!"):
		state = PassSet
		m := hmac.New(sha256.New, r.key)
		m.Write([]byte(kind))
		m.Write([]byte{0})
		m.Write([]byte(rest))
		digest = base64.RawStdEncoding.EncodeToString(m.Sum(nil)[:18])
	default:
		state, locked = PassDisabled, false
	}
	return state, locked, digest
}

func (r *reader) parsePasswd(s *Snapshot, data []byte, path string) {
	eachLine(data, path, r.problem, func(n int, line string) {
		if nisCompat(line) {
			return
		}
		where := fmt.Sprintf("%s:%d", path, n)
		f := strings.Split(line, ":")
		if len(f) != 7 {
			r.problem(where, fmt.Sprintf("passwd entry has %d fields, want 7", len(f)), sample(line))
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !validName(f[0]) || !ok1 || !ok2 {
			r.problem(where, "passwd entry has an invalid name, UID or GID", sample(line))
			return
		}
		if _, dup := s.Users[f[0]]; dup {
			r.problem(where, "duplicate passwd entry (the first one is used)", sample(line))
			return
		}
		u := &User{Name: f[0], UID: uid, GID: gid, GECOS: f[4], Home: f[5], Shell: f[6], PasswdLine: redactLine(f)}
		if f[1] != "x" {
			// No shadow indirection: the hash (or its absence) is here.
			u.PassState, u.Locked, u.PassDigest = r.passField("passwd", f[1])
		}
		s.Users[u.Name] = u
	})
}

func (r *reader) parseShadow(s *Snapshot, data []byte, path string) {
	seen := map[string]bool{}
	eachLine(data, path, r.problem, func(n int, line string) {
		if nisCompat(line) {
			return
		}
		where := fmt.Sprintf("%s:%d", path, n)
		f := strings.Split(line, ":")
		if len(f) != 9 {
			r.problem(where, fmt.Sprintf("shadow entry has %d fields, want 9", len(f)), sample(line))
			return
		}
		if !validName(f[0]) {
			r.problem(where, "shadow entry has an invalid name", sample(line))
			return
		}
		for _, v := range f[2:8] {
			if v != "" {
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					r.problem(where, "shadow entry has a non-numeric date or age field", sample(line))
					return
				}
			}
		}
		if seen[f[0]] {
			r.problem(where, "duplicate shadow entry (the first one is used)", sample(line))
			return
		}
		seen[f[0]] = true
		u, ok := s.Users[f[0]]
		if !ok {
			r.problem(where, "shadow entry without a passwd entry", sample(line))
			return
		}
		u.Shadow = true
		u.PassState, u.Locked, u.PassDigest = r.passField("shadow", f[1])
		u.LastChange, u.MinAge, u.MaxAge, u.Warn, u.Inactive, u.Expire = f[2], f[3], f[4], f[5], f[6], f[7]
		u.ShadowLine = redactLine(f)
	})
}

// splitList splits a comma-separated member list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

func (r *reader) parseGroup(s *Snapshot, data []byte, path string) {
	eachLine(data, path, r.problem, func(n int, line string) {
		if nisCompat(line) {
			return
		}
		where := fmt.Sprintf("%s:%d", path, n)
		f := strings.Split(line, ":")
		if len(f) != 4 {
			r.problem(where, fmt.Sprintf("group entry has %d fields, want 4", len(f)), sample(line))
			return
		}
		gid, ok := parseID(f[2])
		if !validName(f[0]) || !ok {
			r.problem(where, "group entry has an invalid name or GID", sample(line))
			return
		}
		if _, dup := s.Groups[f[0]]; dup {
			r.problem(where, "duplicate group entry (the first one is used)", sample(line))
			return
		}
		g := &Group{Name: f[0], GID: gid, Members: splitList(f[3]), GroupLine: redactLine(f)}
		if f[1] != "x" {
			g.PassState, _, g.PassDigest = r.passField("group", f[1])
		}
		s.Groups[g.Name] = g
	})
}

func (r *reader) parseGshadow(s *Snapshot, data []byte, path string) {
	seen := map[string]bool{}
	eachLine(data, path, r.problem, func(n int, line string) {
		if nisCompat(line) {
			return
		}
		where := fmt.Sprintf("%s:%d", path, n)
		f := strings.Split(line, ":")
		if len(f) != 4 {
			r.problem(where, fmt.Sprintf("gshadow entry has %d fields, want 4", len(f)), sample(line))
			return
		}
		if !validName(f[0]) {
			r.problem(where, "gshadow entry has an invalid name", sample(line))
			return
		}
		if seen[f[0]] {
			r.problem(where, "duplicate gshadow entry (the first one is used)", sample(line))
			return
		}
		seen[f[0]] = true
		g, ok := s.Groups[f[0]]
		if !ok {
			r.problem(where, "gshadow entry without a group entry", sample(line))
			return
		}
		g.PassState, _, g.PassDigest = r.passField("gshadow", f[1])
		g.Admins = splitList(f[2])
		g.GshadowLine = redactLine(f)
	})
}

// readSudoers reads /etc/sudoers and every file in /etc/sudoers.d that sudo
// itself would read (names without '.' and not ending in '~').
func (r *reader) readSudoers(s *Snapshot) error {
	files := []string{relSudoers}
	ents, err := os.ReadDir(r.path(relSudoersD))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", r.path(relSudoersD), err)
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		if strings.Contains(name, ".") || strings.HasSuffix(name, "~") || e.IsDir() {
			continue
		}
		if n++; n > MaxSudoersFiles {
			r.problem(r.path(relSudoersD), fmt.Sprintf("more than %d files; the rest are not read", MaxSudoersFiles), "")
			break
		}
		files = append(files, relSudoersD+"/"+name)
	}
	for _, rel := range files {
		data, mtime, err := readFile(r.path(rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if s.Sudoers == nil {
			s.Sudoers = map[string][]string{}
		}
		s.MTimes[rel] = mtime
		s.Sudoers[rel] = sudoersStatements(data)
	}
	return nil
}

// sudoersStatements returns the statements of a sudoers file: continuation
// lines joined, comments removed, whitespace collapsed. "#include" and
// "#includedir" are directives, not comments, and neither is "#123" used as
// a UID in a user specification.
func sudoersStatements(data []byte) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), MaxLineLength)
	flush := func() {
		st := strings.Join(strings.Fields(cur.String()), " ")
		cur.Reset()
		if st != "" {
			out = append(out, st)
		}
	}
	for sc.Scan() {
		line := stripSudoersComment(sc.Text())
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return out
}

func stripSudoersComment(line string) string {
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++ // escaped character
		case '#':
			rest := line[i+1:]
			if strings.HasPrefix(rest, "include") || (len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9') {
				continue
			}
			return line[:i]
		}
	}
	return line
}
