package accounts

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/event"
)

// finding is one change found by comparing two snapshots: an event without
// the fields the collector fills in (id, observed time, source), and a key
// that identifies the change within the pair of snapshots, from which the
// event id is derived.
type finding struct {
	key string
	ev  event.Event
}

// differ compares snapshots. privileged names the groups whose membership
// is a privilege (sudo, wheel, ...).
type differ struct {
	privileged map[string]bool
	// now is the time given to changes whose file has no modification
	// time (a deleted sudoers.d file).
	now time.Time
}

// diff returns every change from old to cur in a fixed order: group
// creations, user creations, renames and modifications, memberships,
// user deletions, group deletions, sudoers. The order is deterministic, so
// that a resumed collector can skip the findings it already emitted.
func (d *differ) diff(old, cur *Snapshot) []finding {
	var out []finding
	userRen := renames(old.Users, cur.Users, func(u *User) int64 { return u.UID })
	groupRen := renames(old.Groups, cur.Groups, func(g *Group) int64 { return g.GID })
	userFrom := invert(userRen)
	groupFrom := invert(groupRen)

	for _, name := range sortedKeys(cur.Groups) {
		if _, ok := old.Groups[name]; !ok && groupFrom[name] == "" {
			out = append(out, d.groupCreate(cur, cur.Groups[name]))
		}
	}
	for _, name := range sortedKeys(cur.Users) {
		if _, ok := old.Users[name]; !ok && userFrom[name] == "" {
			out = append(out, d.userCreate(cur, cur.Users[name]))
		}
	}
	for _, name := range sortedKeys(cur.Users) {
		prev := old.Users[name]
		if from := userFrom[name]; from != "" {
			prev = old.Users[from]
		}
		if prev != nil {
			out = append(out, d.userChanges(old, cur, prev, cur.Users[name])...)
		}
	}
	for _, name := range sortedKeys(cur.Groups) {
		prev := old.Groups[name]
		if from := groupFrom[name]; from != "" {
			prev = old.Groups[from]
		}
		if prev != nil {
			out = append(out, d.groupChanges(cur, prev, cur.Groups[name])...)
		}
	}
	for _, name := range sortedKeys(cur.Groups) {
		prev := old.Groups[name]
		if from := groupFrom[name]; from != "" {
			prev = old.Groups[from]
		}
		out = append(out, d.memberships(cur, prev, cur.Groups[name], userRen)...)
	}
	for _, name := range sortedKeys(old.Users) {
		if _, ok := cur.Users[name]; !ok && userRen[name] == "" {
			out = append(out, d.userDelete(cur, old.Users[name]))
		}
	}
	for _, name := range sortedKeys(old.Groups) {
		if _, ok := cur.Groups[name]; !ok && groupRen[name] == "" {
			out = append(out, d.groupDelete(cur, old.Groups[name]))
		}
	}
	out = append(out, d.sudoers(old, cur)...)
	return out
}

// renames pairs entries that disappeared with entries that appeared under
// the same numeric id: a rename keeps the UID (or GID). Only unambiguous
// pairs count; two new names sharing the id of one old name are a delete
// and two creates.
func renames[T any](old, cur map[string]T, id func(T) int64) map[string]string {
	gone := map[int64][]string{}
	for name, v := range old {
		if _, ok := cur[name]; !ok {
			gone[id(v)] = append(gone[id(v)], name)
		}
	}
	came := map[int64][]string{}
	for name, v := range cur {
		if _, ok := old[name]; !ok {
			came[id(v)] = append(came[id(v)], name)
		}
	}
	out := map[string]string{}
	for n, from := range gone {
		if to := came[n]; len(from) == 1 && len(to) == 1 {
			out[from[0]] = to[0]
		}
	}
	return out
}

func invert(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

func sortedKeys[T any](m map[string]T) []string {
	return slices.Sorted(maps.Keys(m))
}

func (d *differ) at(s *Snapshot, rel string) time.Time {
	if t, ok := s.MTimes[rel]; ok {
		return t
	}
	return d.now
}

func targetUser(u *User) *event.User {
	return &event.User{Name: u.Name, UID: event.Int64(u.UID)}
}

func targetGroup(g *Group) *event.Group {
	return &event.Group{Name: g.Name, GID: event.Int64(g.GID)}
}

func (d *differ) base(action event.Action, t time.Time, file string) event.Event {
	return event.Event{
		Time:    t,
		Action:  action,
		Outcome: event.OutcomeSuccess,
		Actor:   event.Actor{Type: event.ActorUnknown},
		Source:  event.Source{File: file},
	}
}

func rawLines(prefix string, lines ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(lines); i += 2 {
		if lines[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(prefix + lines[i] + ": " + lines[i+1])
	}
	return b.String()
}

func (d *differ) userCreate(cur *Snapshot, u *User) finding {
	ev := d.base(event.UserCreate, d.at(cur, relPasswd), relPasswd)
	ev.Target.User = targetUser(u)
	ev.Changes = []event.Change{
		{Field: "uid", New: strconv.FormatInt(u.UID, 10)},
		{Field: "gid", New: strconv.FormatInt(u.GID, 10)},
	}
	for _, c := range []event.Change{{Field: "comment", New: u.GECOS}, {Field: "home", New: u.Home}, {Field: "shell", New: u.Shell}, {Field: "password_state", New: u.PassState}} {
		if c.New != "" {
			ev.Changes = append(ev.Changes, c)
		}
	}
	if u.UID == 0 {
		ev.Severity = event.SeverityCritical // a second root account
	}
	ev.Raw = rawLines("+", "passwd", u.PasswdLine, "shadow", u.ShadowLine)
	return finding{key: "user.create:" + u.Name, ev: ev}
}

func (d *differ) userDelete(cur *Snapshot, u *User) finding {
	ev := d.base(event.UserDelete, d.at(cur, relPasswd), relPasswd)
	ev.Target.User = targetUser(u)
	ev.Raw = rawLines("-", "passwd", u.PasswdLine, "shadow", u.ShadowLine)
	return finding{key: "user.delete:" + u.Name, ev: ev}
}

func change(field, old, cur string) []event.Change {
	if old == cur {
		return nil
	}
	return []event.Change{{Field: field, Old: old, New: cur}}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// userChanges compares one account before and after (same name, or a
// rename that kept the UID).
func (d *differ) userChanges(old, cur *Snapshot, prev, u *User) []finding {
	var out []finding
	var fields []event.Change
	fields = append(fields, change("uid", itoa(prev.UID), itoa(u.UID))...)
	fields = append(fields, change("gid", itoa(prev.GID), itoa(u.GID))...)
	fields = append(fields, change("comment", prev.GECOS, u.GECOS)...)
	fields = append(fields, change("home", prev.Home, u.Home)...)
	fields = append(fields, change("shell", prev.Shell, u.Shell)...)
	aging := append(append(append(append(
		change("min_age", prev.MinAge, u.MinAge),
		change("max_age", prev.MaxAge, u.MaxAge)...),
		change("warn", prev.Warn, u.Warn)...),
		change("inactive", prev.Inactive, u.Inactive)...),
		change("expire", prev.Expire, u.Expire)...)
	fields = append(fields, aging...)

	passChanged := prev.PassState != u.PassState || prev.PassDigest != u.PassDigest
	if !passChanged {
		// chage -d, passwd -e: the last-change date alone moved.
		fields = append(fields, change("last_change", prev.LastChange, u.LastChange)...)
	}
	raw := rawLines("-", "passwd", prev.PasswdLine, "shadow", prev.ShadowLine) + "\n" +
		rawLines("+", "passwd", u.PasswdLine, "shadow", u.ShadowLine)

	if prev.Name != u.Name {
		ev := d.base(event.UserRename, d.at(cur, relPasswd), relPasswd)
		ev.Target.User = targetUser(u)
		ev.Changes = append([]event.Change{{Field: "name", Old: prev.Name, New: u.Name}}, fields...)
		ev.Raw = raw
		out = append(out, finding{key: "user.rename:" + prev.Name + ">" + u.Name, ev: ev})
	} else if len(fields) > 0 {
		file := relPasswd
		if prev.PasswdLine == u.PasswdLine {
			file = relShadow
		}
		ev := d.base(event.UserModify, d.at(cur, file), file)
		ev.Target.User = targetUser(u)
		ev.Changes = fields
		if u.UID == 0 && prev.UID != 0 {
			ev.Severity = event.SeverityCritical
		}
		ev.Raw = raw
		out = append(out, finding{key: "user.modify:" + u.Name, ev: ev})
	}
	if prev.PassState == PassSet && u.PassState == PassSet && prev.Locked != u.Locked {
		action := event.UserLock
		if !u.Locked {
			action = event.UserUnlock
		}
		ev := d.base(action, d.at(cur, relShadow), relShadow)
		ev.Target.User = targetUser(u)
		ev.Changes = []event.Change{{Field: "locked", Old: strconv.FormatBool(prev.Locked), New: strconv.FormatBool(u.Locked)}}
		ev.Raw = raw
		out = append(out, finding{key: string(action) + ":" + u.Name, ev: ev})
	}
	if passChanged {
		file := relShadow
		if !u.Shadow {
			file = relPasswd
		}
		ev := d.base(event.PasswordChange, d.at(cur, file), file)
		ev.Target.User = targetUser(u)
		if prev.PassState != u.PassState {
			ev.Changes = append(ev.Changes, event.Change{Field: "password_state", Old: prev.PassState, New: u.PassState})
		}
		if prev.PassDigest != u.PassDigest && prev.PassDigest != "" && u.PassDigest != "" {
			ev.Changes = append(ev.Changes, event.Change{Field: "password", Old: event.Redacted, New: event.Redacted})
		}
		ev.Changes = append(ev.Changes, change("last_change", prev.LastChange, u.LastChange)...)
		if u.PassState == PassEmpty {
			ev.Severity = event.SeverityHigh // the account now logs in without a password
		}
		ev.Raw = raw
		out = append(out, finding{key: "password.change:" + u.Name, ev: ev})
	}
	return out
}

func (d *differ) groupCreate(cur *Snapshot, g *Group) finding {
	ev := d.base(event.GroupCreate, d.at(cur, relGroup), relGroup)
	ev.Target.Group = targetGroup(g)
	ev.Changes = []event.Change{{Field: "gid", New: itoa(g.GID)}}
	if len(g.Admins) > 0 {
		ev.Changes = append(ev.Changes, event.Change{Field: "administrators", New: strings.Join(g.Admins, ",")})
	}
	ev.Raw = rawLines("+", "group", g.GroupLine, "gshadow", g.GshadowLine)
	return finding{key: "group.create:" + g.Name, ev: ev}
}

func (d *differ) groupDelete(cur *Snapshot, g *Group) finding {
	ev := d.base(event.GroupDelete, d.at(cur, relGroup), relGroup)
	ev.Target.Group = targetGroup(g)
	if len(g.Members) > 0 {
		ev.Changes = []event.Change{{Field: "members", Old: strings.Join(g.Members, ",")}}
	}
	ev.Raw = rawLines("-", "group", g.GroupLine, "gshadow", g.GshadowLine)
	return finding{key: "group.delete:" + g.Name, ev: ev}
}

func (d *differ) groupChanges(cur *Snapshot, prev, g *Group) []finding {
	var fields []event.Change
	fields = append(fields, change("name", prev.Name, g.Name)...)
	fields = append(fields, change("gid", itoa(prev.GID), itoa(g.GID))...)
	fields = append(fields, change("administrators", strings.Join(prev.Admins, ","), strings.Join(g.Admins, ","))...)
	fields = append(fields, change("password_state", prev.PassState, g.PassState)...)
	if prev.PassState == g.PassState && prev.PassDigest != g.PassDigest {
		fields = append(fields, event.Change{Field: "password", Old: event.Redacted, New: event.Redacted})
	}
	if len(fields) == 0 {
		return nil
	}
	file := relGroup
	if prev.GroupLine == g.GroupLine {
		file = relGshadow
	}
	ev := d.base(event.GroupModify, d.at(cur, file), file)
	ev.Target.Group = targetGroup(g)
	ev.Changes = fields
	ev.Raw = rawLines("-", "group", prev.GroupLine, "gshadow", prev.GshadowLine) + "\n" +
		rawLines("+", "group", g.GroupLine, "gshadow", g.GshadowLine)
	return []finding{{key: "group.modify:" + prev.Name + ">" + g.Name, ev: ev}}
}

// memberships compares the supplementary members of one group (prev is nil
// for a new group). A member renamed with its account is not a change.
func (d *differ) memberships(cur *Snapshot, prev, g *Group, userRen map[string]string) []finding {
	before := map[string]bool{}
	if prev != nil {
		for _, m := range prev.Members {
			if to := userRen[m]; to != "" {
				m = to
			}
			before[m] = true
		}
	}
	after := map[string]bool{}
	for _, m := range g.Members {
		after[m] = true
	}
	var out []finding
	emit := func(user string, add bool) {
		action := event.GroupMemberAdd
		sign := "+"
		if !add {
			action, sign = event.GroupMemberRemove, "-"
		}
		var privs []string
		if d.privileged[g.Name] {
			privs = []string{"group:" + g.Name}
			action = event.PrivilegeGrant
			if !add {
				action = event.PrivilegeRevoke
			}
		}
		ev := d.base(action, d.at(cur, relGroup), relGroup)
		ev.Target.Group = targetGroup(g)
		ev.Target.User = &event.User{Name: user}
		if u, ok := cur.Users[user]; ok {
			ev.Target.User.UID = event.Int64(u.UID)
		}
		ev.Target.Privileges = privs
		ev.Changes = []event.Change{{Field: "members", Old: boolMember(!add, user), New: boolMember(add, user)}}
		line := g.GroupLine
		if !add && prev != nil {
			line = prev.GroupLine
		}
		ev.Raw = rawLines(sign, "group", line)
		out = append(out, finding{key: fmt.Sprintf("member%s:%s:%s", sign, g.Name, user), ev: ev})
	}
	for _, m := range slices.Sorted(maps.Keys(after)) {
		if !before[m] {
			emit(m, true)
		}
	}
	for _, m := range slices.Sorted(maps.Keys(before)) {
		if !after[m] {
			emit(m, false)
		}
	}
	return out
}

func boolMember(present bool, user string) string {
	if present {
		return user
	}
	return ""
}

// sudoers reports statements that appeared (privilege.grant) or
// disappeared (privilege.revoke), per file. A changed statement is one of
// each.
func (d *differ) sudoers(old, cur *Snapshot) []finding {
	files := map[string]bool{}
	for f := range old.Sudoers {
		files[f] = true
	}
	for f := range cur.Sudoers {
		files[f] = true
	}
	var out []finding
	for _, f := range slices.Sorted(maps.Keys(files)) {
		before, after := counts(old.Sudoers[f]), counts(cur.Sudoers[f])
		t := d.at(cur, f)
		if _, ok := cur.Sudoers[f]; !ok {
			t = d.now
		}
		for _, st := range cur.Sudoers[f] {
			if before[st] > 0 {
				before[st]--
				after[st]--
				continue
			}
		}
		emit := func(st string, grant bool) {
			action, sign := event.PrivilegeGrant, "+"
			if !grant {
				action, sign = event.PrivilegeRevoke, "-"
			}
			ev := d.base(action, t, f)
			ev.Target.Privileges = []string{"sudoers:" + st}
			who := sudoersSubject(st)
			switch {
			case strings.HasPrefix(who, "%") && len(who) > 1 && !strings.HasPrefix(who, "%#"):
				ev.Target.Group = &event.Group{Name: strings.TrimPrefix(who, "%")}
			case who != "" && !strings.HasPrefix(who, "%") && !strings.HasPrefix(who, "+") && !strings.HasPrefix(who, "#") && who != strings.ToUpper(who):
				ev.Target.User = &event.User{Name: who}
			}
			ev.Raw = sign + f + ": " + st
			out = append(out, finding{key: "sudoers" + sign + f + ":" + st, ev: ev})
		}
		for _, st := range uniqueInOrder(old.Sudoers[f]) {
			for range before[st] {
				emit(st, false)
			}
		}
		for _, st := range uniqueInOrder(cur.Sudoers[f]) {
			for range after[st] {
				emit(st, true)
			}
		}
	}
	return out
}

func counts(list []string) map[string]int {
	m := map[string]int{}
	for _, s := range list {
		m[s]++
	}
	return m
}

func uniqueInOrder(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// sudoersSubject returns the first word of a user specification ("alice",
// "%admin"), or "" for Defaults, aliases and directives.
func sudoersSubject(st string) string {
	word, _, _ := strings.Cut(st, " ")
	if strings.HasPrefix(word, "Defaults") || strings.HasSuffix(word, "_Alias") ||
		strings.HasPrefix(word, "#include") || strings.HasPrefix(word, "@include") {
		return ""
	}
	if strings.Contains(word, ",") || strings.Contains(word, "=") {
		return ""
	}
	return word
}
