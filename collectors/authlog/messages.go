package authlog

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/provtrail/provtrail/event"
)

// tool is a program whose lines can record a change (or, for sudo and su,
// who made one).
type tool uint8

const (
	toolNone tool = iota
	toolUseradd
	toolUsermod
	toolUserdel
	toolGroupadd
	toolGroupmod
	toolGroupdel
	toolGpasswd
	toolPasswd
	toolChpasswd
	toolNewusers
	toolChage
	toolChfn
	toolChsh
	toolSudo
	toolSu
)

var toolNames = [...]string{
	toolNone: "", toolUseradd: "useradd", toolUsermod: "usermod", toolUserdel: "userdel",
	toolGroupadd: "groupadd", toolGroupmod: "groupmod", toolGroupdel: "groupdel",
	toolGpasswd: "gpasswd", toolPasswd: "passwd", toolChpasswd: "chpasswd",
	toolNewusers: "newusers", toolChage: "chage", toolChfn: "chfn", toolChsh: "chsh",
	toolSudo: "sudo", toolSu: "su",
}

func (t tool) String() string { return toolNames[t] }

// lookupTool maps a program name (or a path to one) to a tool. It does not
// allocate: unrelated lines are rejected here.
func lookupTool(p []byte) tool {
	if len(p) < 2 || len(p) > 64 {
		return toolNone
	}
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	switch string(p) {
	case "useradd":
		return toolUseradd
	case "usermod":
		return toolUsermod
	case "userdel":
		return toolUserdel
	case "groupadd":
		return toolGroupadd
	case "groupmod":
		return toolGroupmod
	case "groupdel":
		return toolGroupdel
	case "gpasswd":
		return toolGpasswd
	case "passwd":
		return toolPasswd
	case "chpasswd":
		return toolChpasswd
	case "newusers":
		return toolNewusers
	case "chage":
		return toolChage
	case "chfn":
		return toolChfn
	case "chsh":
		return toolChsh
	case "sudo":
		return toolSudo
	case "su":
		return toolSu
	}
	return toolNone
}

// fragment is what one change line says. Twin lines of one process (group
// and gshadow, /etc/group and /etc/gshadow) give fragments with the same
// key, which are merged into one event.
type fragment struct {
	key     string
	action  event.Action
	outcome event.Outcome
	user    string
	uid     *int64
	group   string
	gid     *int64
	changes []event.Change
	// by is the actor the tool itself names ("by root"); byUID its uid.
	by    string
	byUID *int64
	tty   string
	// names are the user and group names a matching sudo command line
	// must carry among its arguments.
	names []string
	// passwdChangedBy marks passwd's "password for 'x' changed by 'y'",
	// which says the same for lock, unlock, expire, delete and aging.
	passwdChangedBy bool
}

type msgResult uint8

const (
	msgIgnore    msgResult = iota // not a change (sudo/su/PAM noise, LOG_ERR lines)
	msgChange                     // f holds a change
	msgMalformed                  // looks like a change line but does not parse
)

// parseChange reads the message of a line from one of the account tools.
func parseChange(t tool, msg []byte, f *fragment) msgResult {
	msg = trimMessage(msg)
	if len(msg) == 0 {
		return msgIgnore
	}
	// PAM's password change lines come from passwd, chpasswd, newusers.
	if bytes.HasPrefix(msg, []byte("pam_")) {
		return parsePAM(msg, f)
	}
	switch t {
	case toolUseradd, toolUsermod, toolUserdel:
		return parseUserTool(msg, f)
	case toolGroupadd:
		return parseGroupadd(msg, f)
	case toolGroupmod:
		return parseGroupmod(msg, f)
	case toolGroupdel:
		return parseGroupdel(msg, f)
	case toolGpasswd:
		return parseGpasswd(msg, f)
	case toolPasswd:
		// "password for 'u' changed by 'root'"
		if rest, ok := cutPrefix(msg, "password for "); ok {
			u, rest, ok1 := quoted(rest)
			rest, ok2 := cutPrefix(rest, " changed by ")
			by, rest, ok3 := quoted(rest)
			if !ok1 || !ok2 || !ok3 || len(rest) != 0 {
				return msgMalformed
			}
			f.user, f.by, f.passwdChangedBy = u, by, true
			f.action = event.UserModify
			f.changes = []event.Change{{Field: "password_settings"}}
			f.key = "user.modify|" + u
			f.names = []string{u}
			return msgChange
		}
	case toolChage:
		if rest, ok := cutPrefix(msg, "changed password expiry for "); ok && len(rest) > 0 {
			u := string(rest)
			f.user, f.action, f.key, f.names = u, event.UserModify, "user.modify|"+u, []string{u}
			f.changes = []event.Change{{Field: "password_aging"}}
			return msgChange
		}
	case toolChfn:
		if rest, ok := cutPrefix(msg, "changed user "); ok {
			u, rest, ok := quoted(rest)
			if !ok || string(rest) != " information" {
				return msgMalformed
			}
			f.user, f.action, f.key, f.names = u, event.UserModify, "user.modify|"+u, []string{u}
			f.changes = []event.Change{{Field: "gecos"}}
			return msgChange
		}
	case toolChsh:
		if rest, ok := cutPrefix(msg, "changed user "); ok {
			u, rest, ok1 := quoted(rest)
			rest, ok2 := cutPrefix(rest, " shell to ")
			sh, rest, ok3 := quoted(rest)
			if !ok1 || !ok2 || !ok3 || len(rest) != 0 {
				return msgMalformed
			}
			f.user, f.action, f.key, f.names = u, event.UserModify, "user.modify|"+u, []string{u}
			f.changes = []event.Change{{Field: "shell", New: sh}}
			return msgChange
		}
	}
	return msgIgnore
}

// parsePAM reads pam_unix(SERVICE:chauthtok) lines.
func parsePAM(msg []byte, f *fragment) msgResult {
	i := bytes.Index(msg, []byte(":chauthtok): "))
	if i < 0 || bytes.IndexByte(msg[:i], '(') < 0 {
		return msgIgnore
	}
	rest := msg[i+len(":chauthtok): "):]
	if u, ok := cutPrefix(rest, "password changed for "); ok {
		if len(u) == 0 || bytes.IndexByte(u, ' ') >= 0 {
			return msgMalformed
		}
		f.user = string(u)
		f.action = event.PasswordChange
		f.changes = []event.Change{{Field: "password", New: event.Redacted}}
		f.key = "password|" + f.user
		f.names = []string{f.user}
		return msgChange
	}
	if kv, ok := cutPrefix(rest, "authentication failure; "); ok {
		// logname= uid=2001 euid=0 tty= ruser= rhost=  user=pt_alice
		vals := pamFields(kv)
		u := vals["user"]
		if u == "" {
			return msgMalformed
		}
		f.user = u
		f.action = event.PasswordChange
		f.outcome = event.OutcomeFailure
		f.key = "password.failure|" + u
		f.names = []string{u}
		if n, err := strconv.ParseInt(vals["uid"], 10, 64); err == nil {
			f.byUID = event.Int64(n)
		}
		f.by = vals["logname"]
		if f.by == "" {
			f.by = vals["ruser"]
		}
		if t := vals["tty"]; t != "" {
			f.tty = strings.TrimPrefix(t, "/dev/")
		}
		return msgChange
	}
	return msgIgnore
}

// pamFields splits "k=v k=v  k=v" (values may be empty).
func pamFields(b []byte) map[string]string {
	out := map[string]string{}
	for _, tok := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(tok, "="); ok {
			out[k] = v
		}
	}
	return out
}

// parseUserTool reads useradd, usermod and userdel lines.
func parseUserTool(msg []byte, f *fragment) msgResult {
	switch msg[0] {
	case 'n':
		if rest, ok := cutPrefix(msg, "new user: "); ok {
			return parseNewUser(rest, f)
		}
		if rest, ok := cutPrefix(msg, "new group: "); ok {
			return parseNewGroup(rest, f)
		}
	case 'a':
		if rest, ok := cutPrefix(msg, "add "); ok {
			return parseMembership(rest, "to", event.GroupMemberAdd, f)
		}
	case 'd':
		if rest, ok := cutPrefix(msg, "delete user "); ok {
			u, rest, ok := quoted(rest)
			if !ok || len(rest) != 0 {
				return msgMalformed
			}
			f.user, f.action, f.key, f.names = u, event.UserDelete, "user.delete|"+u, []string{u}
			return msgChange
		}
		if rest, ok := cutPrefix(msg, "delete "); ok {
			return parseMembership(rest, "from", event.GroupMemberRemove, f)
		}
	case 'r':
		// removed group 'g' owned by 'u' / removed shadow group 'g' owned by 'u'
		if rest, ok := cutPrefix(msg, "removed "); ok {
			rest, _ = cutPrefix(rest, "shadow ")
			rest, ok1 := cutPrefix(rest, "group ")
			g, rest, ok2 := quoted(rest)
			rest, ok3 := cutPrefix(rest, " owned by ")
			u, rest, ok4 := quoted(rest)
			if !ok1 || !ok2 || !ok3 || !ok4 || len(rest) != 0 {
				return msgMalformed
			}
			f.group, f.action, f.key, f.names = g, event.GroupDelete, "group.delete|"+g, []string{g, u}
			return msgChange
		}
	case 'f':
		// failed adding user 'u', exit code: 9
		if rest, ok := cutPrefix(msg, "failed adding user "); ok {
			u, rest, ok := quoted(rest)
			if !ok {
				return msgMalformed
			}
			f.user, f.action, f.outcome = u, event.UserCreate, event.OutcomeFailure
			f.key, f.names = "user.create.failure|"+u, []string{u}
			if code, ok := cutPrefix(rest, ", exit code: "); ok {
				f.changes = []event.Change{{Field: "exit_code", New: string(code)}}
			}
			return msgChange
		}
	case 'l':
		if rest, ok := cutPrefix(msg, "lock user "); ok {
			return parseUserPassword(rest, event.UserLock, f)
		}
	case 'u':
		if rest, ok := cutPrefix(msg, "unlock user "); ok {
			return parseUserPassword(rest, event.UserUnlock, f)
		}
	case 'c':
		if rest, ok := cutPrefix(msg, "change user name "); ok {
			a, rest, ok1 := quoted(rest)
			rest, ok2 := cutPrefix(rest, " to ")
			b, rest, ok3 := quoted(rest)
			if !ok1 || !ok2 || !ok3 || len(rest) != 0 {
				return msgMalformed
			}
			return rename(a, b, f)
		}
		if rest, ok := cutPrefix(msg, "change user "); ok {
			return parseChangeUser(rest, f)
		}
		if rest, ok := cutPrefix(msg, "change "); ok {
			// change 'a' to 'b' in group 'g' / in shadow group 'g'
			// change admin 'a' to 'b' in shadow group 'g'
			rest, _ = cutPrefix(rest, "admin ")
			a, rest, ok1 := quoted(rest)
			rest, ok2 := cutPrefix(rest, " to ")
			b, rest, ok3 := quoted(rest)
			rest, ok4 := cutPrefix(rest, " in ")
			rest, _ = cutPrefix(rest, "shadow ")
			rest, ok5 := cutPrefix(rest, "group ")
			_, rest, ok6 := quoted(rest)
			if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || len(rest) != 0 {
				return msgMalformed
			}
			return rename(a, b, f)
		}
	}
	return msgIgnore
}

func rename(from, to string, f *fragment) msgResult {
	f.user, f.action = to, event.UserRename
	f.changes = []event.Change{{Field: "name", Old: from, New: to}}
	f.key, f.names = "user.rename|"+from+"|"+to, []string{from, to}
	return msgChange
}

// parseUserPassword reads "'u' password" after "lock user "/"unlock user ".
func parseUserPassword(rest []byte, a event.Action, f *fragment) msgResult {
	u, rest, ok := quoted(rest)
	if !ok || string(rest) != " password" {
		return msgMalformed
	}
	f.user, f.action, f.key, f.names = u, a, string(a)+"|"+u, []string{u}
	return msgChange
}

// parseChangeUser reads what follows "change user ":
// 'u' password | 'u' FIELD from 'a' to 'b'.
func parseChangeUser(rest []byte, f *fragment) msgResult {
	u, rest, ok := quoted(rest)
	if !ok {
		return msgMalformed
	}
	f.user, f.names = u, []string{u}
	if string(rest) == " password" {
		f.action = event.PasswordReset
		f.changes = []event.Change{{Field: "password", New: event.Redacted}}
		f.key = "password|" + u
		return msgChange
	}
	rest, ok = cutPrefix(rest, " ")
	sp := bytes.IndexByte(rest, ' ')
	if !ok || sp <= 0 {
		return msgMalformed
	}
	field := string(rest[:sp])
	rest, ok1 := cutPrefix(rest[sp:], " from ")
	old, rest, ok2 := quoted(rest)
	rest, ok3 := cutPrefix(rest, " to ")
	nw, rest, ok4 := quoted(rest)
	if !ok1 || !ok2 || !ok3 || !ok4 || len(rest) != 0 {
		return msgMalformed
	}
	switch field {
	case "UID":
		field = "uid"
		if n, err := strconv.ParseInt(nw, 10, 64); err == nil {
			f.uid = event.Int64(n)
		}
	case "GID":
		field = "gid"
	case "home", "shell", "inactive", "expiration":
	default:
		field = strings.ToLower(field)
	}
	f.action = event.UserModify
	f.changes = []event.Change{{Field: field, Old: old, New: nw}}
	f.key = "user.modify|" + u
	return msgChange
}

// parseMembership reads "'u' to group 'g'" / "'u' to shadow group 'g'"
// (prep "to") or the same with "from".
func parseMembership(rest []byte, prep string, a event.Action, f *fragment) msgResult {
	u, rest, ok1 := quoted(rest)
	rest, ok2 := cutPrefix(rest, " ")
	rest, ok3 := cutPrefix(rest, prep)
	rest, ok4 := cutPrefix(rest, " ")
	rest, _ = cutPrefix(rest, "shadow ")
	rest, ok5 := cutPrefix(rest, "group ")
	g, rest, ok6 := quoted(rest)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || len(rest) != 0 {
		return msgMalformed
	}
	member(u, g, a, f)
	return msgChange
}

func member(u, g string, a event.Action, f *fragment) {
	f.user, f.group, f.action = u, g, a
	f.key, f.names = string(a)+"|"+u+"|"+g, []string{u, g}
}

// parseNewUser reads "name=u, UID=1, GID=2, home=/h, shell=/s[, from=/dev/pts/1][, future=...]".
func parseNewUser(rest []byte, f *fragment) msgResult {
	var kv kvs
	kv.parse(rest)
	name := kv.get("name")
	if name == "" {
		return msgMalformed
	}
	f.user, f.action, f.key, f.names = name, event.UserCreate, "user.create|"+name, []string{name}
	uid, err1 := strconv.ParseInt(kv.get("UID"), 10, 64)
	_, err2 := strconv.ParseInt(kv.get("GID"), 10, 64)
	if err1 != nil || err2 != nil {
		return msgMalformed
	}
	f.uid = event.Int64(uid)
	f.changes = []event.Change{
		{Field: "uid", New: kv.get("UID")},
		{Field: "gid", New: kv.get("GID")},
	}
	if v, ok := kv.lookup("home"); ok {
		f.changes = append(f.changes, event.Change{Field: "home", New: v})
	}
	if v, ok := kv.lookup("shell"); ok {
		f.changes = append(f.changes, event.Change{Field: "shell", New: v})
	}
	if from := kv.get("from"); from != "" && from != "none" {
		f.tty = strings.TrimPrefix(from, "/dev/")
	}
	return msgChange
}

// parseNewGroup reads "name=g, GID=1".
func parseNewGroup(rest []byte, f *fragment) msgResult {
	var kv kvs
	kv.parse(rest)
	name := kv.get("name")
	if name == "" {
		return msgMalformed
	}
	f.group, f.action, f.key, f.names = name, event.GroupCreate, "group.create|"+name, []string{name}
	if v, ok := kv.lookup("GID"); ok {
		gid, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return msgMalformed
		}
		f.gid = event.Int64(gid)
		f.changes = []event.Change{{Field: "gid", New: v}}
	}
	return msgChange
}

// parseGroupadd reads "group added to /etc/group: name=g, GID=1",
// "group added to /etc/gshadow: name=g" and "new group: name=g, GID=1".
func parseGroupadd(msg []byte, f *fragment) msgResult {
	if rest, ok := cutPrefix(msg, "new group: "); ok {
		return parseNewGroup(rest, f)
	}
	if rest, ok := cutPrefix(msg, "group added to "); ok {
		i := bytes.Index(rest, []byte(": "))
		if i < 0 {
			return msgMalformed
		}
		return parseNewGroup(rest[i+2:], f)
	}
	return msgIgnore
}

// parseGroupdel reads "group 'g' removed from /etc/group" and "group 'g' removed".
func parseGroupdel(msg []byte, f *fragment) msgResult {
	rest, ok := cutPrefix(msg, "group ")
	if !ok {
		return msgIgnore
	}
	g, rest, ok1 := quoted(rest)
	rest, ok2 := cutPrefix(rest, " removed")
	if !ok1 || !ok2 || (len(rest) != 0 && !bytes.HasPrefix(rest, []byte(" from "))) {
		return msgMalformed
	}
	f.group, f.action, f.key, f.names = g, event.GroupDelete, "group.delete|"+g, []string{g}
	return msgChange
}

// parseGroupmod reads "group changed in FILE (group g/1001, new name: g2, new gid: 6000, new password)"
// and the gshadow form "(group g, new name: g2)".
func parseGroupmod(msg []byte, f *fragment) msgResult {
	rest, ok := cutPrefix(msg, "group changed in ")
	if !ok {
		return msgIgnore
	}
	i := bytes.Index(rest, []byte(" (group "))
	if i < 0 || rest[len(rest)-1] != ')' {
		return msgMalformed
	}
	parts := strings.Split(string(rest[i+len(" (group "):len(rest)-1]), ", ")
	name, gidStr, hasGID := strings.Cut(parts[0], "/")
	if name == "" {
		return msgMalformed
	}
	f.group, f.action, f.key = name, event.GroupModify, "group.modify|"+name
	f.names = []string{name}
	if hasGID {
		gid, err := strconv.ParseInt(gidStr, 10, 64)
		if err != nil {
			return msgMalformed
		}
		f.gid = event.Int64(gid)
	}
	for _, p := range parts[1:] {
		switch {
		case strings.HasPrefix(p, "new name: "):
			// Like user.rename, the target is the group as it is now named.
			nn := strings.TrimPrefix(p, "new name: ")
			f.changes = append(f.changes, event.Change{Field: "name", Old: name, New: nn})
			f.names = append(f.names, nn)
			f.group = nn
		case strings.HasPrefix(p, "new gid: "):
			c := event.Change{Field: "gid", New: strings.TrimPrefix(p, "new gid: ")}
			if hasGID {
				c.Old = gidStr
			}
			f.changes = append(f.changes, c)
		case p == "new password":
			f.changes = append(f.changes, event.Change{Field: "password", New: event.Redacted})
		default:
			if k, v, ok := strings.Cut(p, ": "); ok {
				f.changes = append(f.changes, event.Change{Field: strings.ReplaceAll(strings.TrimPrefix(k, "new "), " ", "_"), New: v})
			}
		}
	}
	return msgChange
}

// parseGpasswd reads gpasswd's lines, which name the invoking user:
// "user u added by a to group g", "user u removed by a from group g",
// "members of group g set by a to u1,u2", "administrators of group g set by a to u",
// "password of group g removed by a", "password of group g changed by a",
// "access to group g restricted by a"; each may end in " in /etc/group" or
// " in /etc/gshadow".
func parseGpasswd(msg []byte, f *fragment) msgResult {
	s := string(msg)
	for _, suf := range []string{" in /etc/gshadow", " in /etc/group"} {
		s = strings.TrimSuffix(s, suf)
	}
	words := strings.Split(s, " ")
	switch {
	case len(words) == 8 && words[0] == "user" && words[2] == "added" && words[3] == "by" && words[5] == "to" && words[6] == "group":
		member(words[1], words[7], event.GroupMemberAdd, f)
		f.by = words[4]
		return msgChange
	case len(words) == 8 && words[0] == "user" && words[2] == "removed" && words[3] == "by" && words[5] == "from" && words[6] == "group":
		member(words[1], words[7], event.GroupMemberRemove, f)
		f.by = words[4]
		return msgChange
	case len(words) >= 7 && (words[0] == "members" || words[0] == "administrators") && words[1] == "of" && words[2] == "group" && words[4] == "set" && words[5] == "by" && (len(words) == 7 || words[7] == "to"):
		g, by := words[3], words[6]
		list := ""
		if len(words) > 8 {
			list = strings.Join(words[8:], " ")
		}
		field := "members"
		if words[0] == "administrators" {
			field = "administrators"
		}
		groupChange(g, by, event.Change{Field: field, New: list}, f)
		f.names = append(f.names, strings.Split(list, ",")...)
		return msgChange
	case len(words) == 7 && words[0] == "password" && words[1] == "of" && words[2] == "group" && words[5] == "by":
		switch words[4] {
		case "removed":
			groupChange(words[3], words[6], event.Change{Field: "password", Old: event.Redacted}, f)
			return msgChange
		case "changed":
			groupChange(words[3], words[6], event.Change{Field: "password", New: event.Redacted}, f)
			return msgChange
		}
	case len(words) == 7 && words[0] == "access" && words[1] == "to" && words[2] == "group" && words[4] == "restricted" && words[5] == "by":
		groupChange(words[3], words[6], event.Change{Field: "access", New: "restricted"}, f)
		return msgChange
	}
	return msgIgnore
}

func groupChange(g, by string, c event.Change, f *fragment) {
	f.group, f.by, f.action = g, by, event.GroupModify
	f.changes = []event.Change{c}
	f.key, f.names = "group.modify|"+g, []string{g}
}

// maxKV bounds the pairs kept of a "k=v, k=v" list: shadow-utils writes
// at most seven, and the ones parsers read come first.
const maxKV = 16

// kvs is a parsed "k=v, k=v" list in its original order. It lives on the
// parser's stack: a useradd line is parsed without allocating for it.
type kvs struct {
	n  int
	kv [2 * maxKV]string
}

// parse reads b's pairs; parts without '=' are skipped, pairs after the
// first maxKV are ignored. The values share one string converted from b.
func (kv *kvs) parse(b []byte) {
	rest := string(b)
	for rest != "" && kv.n < len(kv.kv) {
		part, next, _ := strings.Cut(rest, ", ")
		if k, v, ok := strings.Cut(part, "="); ok {
			kv.kv[kv.n], kv.kv[kv.n+1] = k, v
			kv.n += 2
		}
		rest = next
	}
}

func (kv *kvs) lookup(k string) (string, bool) {
	for i := 0; i+1 < kv.n; i += 2 {
		if kv.kv[i] == k {
			return kv.kv[i+1], true
		}
	}
	return "", false
}

func (kv *kvs) get(k string) string { v, _ := kv.lookup(k); return v }

func cutPrefix(b []byte, p string) ([]byte, bool) {
	if len(b) >= len(p) && string(b[:len(p)]) == p {
		return b[len(p):], true
	}
	return b, false
}

// quoted reads a 'single-quoted' name at the start of b.
func quoted(b []byte) (string, []byte, bool) {
	if len(b) < 2 || b[0] != '\'' {
		return "", b, false
	}
	i := bytes.IndexByte(b[1:], '\'')
	if i < 0 {
		return "", b, false
	}
	return string(b[1 : 1+i]), b[i+2:], true
}

// trimMessage drops what may trail a message: the "\n" userdel and
// groupdel put in their format strings, which rsyslog strips or, with
// control-character escaping on, writes as "#012"; and stray white space.
func trimMessage(msg []byte) []byte {
	for {
		n := len(msg)
		msg = bytes.TrimRight(msg, "\r\n \t")
		msg = bytes.TrimSuffix(msg, []byte("#012"))
		msg = bytes.TrimSuffix(msg, []byte("#015"))
		if len(msg) == n {
			return msg
		}
	}
}
