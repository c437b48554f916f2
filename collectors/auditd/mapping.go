package auditd

import (
	"path"
	"strconv"
	"strings"

	"github.com/provtrail/provtrail/event"
)

// accountTypes are the record types that can describe an account change.
var accountTypes = map[string]bool{
	"ADD_USER": true, "DEL_USER": true, "ADD_GROUP": true, "DEL_GROUP": true,
	"USER_MGMT": true, "GRP_MGMT": true, "USER_CHAUTHTOK": true, "GRP_CHAUTHTOK": true,
	"USER_ACCT": true, "ACCT_LOCK": true, "ACCT_UNLOCK": true, "USER_ROLE_CHANGE": true,
}

// kind is what an op means, across both vocabularies.
type kind uint8

const (
	kSkip kind = iota
	kUserCreate
	kUserDelete
	kGroupCreate
	kGroupDelete
	kMemberAdd
	kMemberRemove
	kMembersSet
	kAdminsSet
	kGroupModify
	kGroupPassword
	kUserModify
	kUserRename
	kPassword
	kLock
	kUnlock
	// kLockToggle is shadow 4.13's usermod -L/-U ("updating passwd"): it
	// does not say which, and its res= is "failed" even on success.
	kLockToggle
	kRole
)

// ops maps exact op values of both vocabularies: Debian 12 / shadow <=
// 4.17.3 ("adding user") and RHEL / shadow >= 4.17.4 ("add-user").
var ops = map[string]kind{
	"adding user": kUserCreate, "add-user": kUserCreate, "adding-user": kUserCreate,
	"adding group": kGroupCreate, "add-group": kGroupCreate, "adding-group": kGroupCreate,
	"adding group to /etc/group": kGroupCreate, "adding group to /etc/gshadow": kGroupCreate,
	"add-shadow-group": kGroupCreate, "adding-shadow-group": kGroupCreate,

	"adding user to group": kMemberAdd, "adding user to shadow group": kMemberAdd,
	"add-user-to-group": kMemberAdd, "add-to-shadow-group": kMemberAdd,
	"add-user-to-shadow-group": kMemberAdd, "adding-user-to-group": kMemberAdd,
	"removing group member": kMemberRemove, "removing user from shadow group": kMemberRemove,
	"deleting user from group": kMemberRemove, "deleting user from shadow group": kMemberRemove,
	"delete-user-from-group": kMemberRemove, "delete-user-from-shadow-group": kMemberRemove,
	"delete-from-shadow-group": kMemberRemove,
	"add-users-to-group":       kMembersSet, "set-admins-of-group": kAdminsSet,
	"modifying group": kGroupModify, "modify-group": kGroupModify, "restrict-group": kGroupModify,
	"delete-group-password": kGroupPassword, "change-password": kGroupPassword,

	"deleting user entries": kUserDelete, "deleting user logged in": kUserDelete,
	"deleting user": kUserDelete, "delete-user": kUserDelete,
	"deleting group": kGroupDelete, "deleting shadow group": kGroupDelete,
	"removing group from /etc/group": kGroupDelete, "removing group from /etc/gshadow": kGroupDelete,
	"delete-group": kGroupDelete, "delete-shadow-group": kGroupDelete,

	"changing name": kUserRename, "changing-name": kUserRename,
	"changing password": kPassword, "changing-password": kPassword, "PAM:chauthtok": kPassword,
	"updating passwd": kLockToggle, "updating password": kLockToggle,
	"updating-passwd": kLockToggle, "updating-password": kLockToggle,
	"locked-password": kLock, "unlocked-password": kUnlock,

	"adding home directory": kSkip, "add-home-dir": kSkip, "deleting home directory": kSkip,
	"deleting-home-directory": kSkip, "moving home directory": kSkip, "moving-home-dir": kSkip,
	"display aging info": kSkip, "display-aging-info": kSkip,
}

// userFields names the user.modify field of "changing X" / "change X" ops.
var userFields = map[string]string{
	"user shell": "shell", "shell": "shell", "comment": "comment",
	"expiration date": "expire", "uid": "uid", "primary group": "gid",
	"home directory": "home", "home dir": "home",
	"max age": "max_age", "min age": "min_age", "passwd warning": "warn",
	"passwd expiration": "expire", "last change date": "last_change",
	"inactive days": "inactive", "passwd inactive": "inactive",
}

// mapped is one record's meaning.
type mapped struct {
	ev event.Event
	// key identifies the change, for merging twin records of one process.
	key string
}

// mapper turns account records into events.
type mapper struct {
	privileged map[string]bool
	hostname   string
}

func unset(id string) bool { return id == "" || id == "4294967295" || id == "-1" || id == "?" }

func known(s string) string {
	if s == "?" || s == "unset" || strings.HasPrefix(s, "unknown(") {
		return ""
	}
	return s
}

func parseInt(s string) *int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<32-1 {
		return nil
	}
	return &n
}

// classify returns what r's op means.
func classify(r *Record) (k kind, field string, sentence []string) {
	op := r.Inner.get("op")
	switch r.Type {
	case "ACCT_LOCK":
		return kLock, "", nil
	case "ACCT_UNLOCK":
		return kUnlock, "", nil
	case "USER_ROLE_CHANGE":
		return kRole, "", nil
	}
	if op == "" && r.Inner.has("op") {
		switch r.Type {
		case "ADD_GROUP":
			return kGroupCreate, "", nil
		case "DEL_GROUP":
			return kGroupDelete, "", nil
		}
		return kSkip, "", nil
	}
	if k, ok := ops[op]; ok {
		if k == kPassword && strings.HasPrefix(op, "PAM:") && r.Type != "USER_CHAUTHTOK" {
			return kSkip, "", nil
		}
		return k, "", nil
	}
	// gpasswd on 4.13 logs its syslog sentence as the op.
	w := strings.Fields(op)
	switch {
	case len(w) >= 7 && w[0] == "user" && w[2] == "added" && w[3] == "by" && w[5] == "to" && w[6] == "group" && len(w) >= 8:
		return kMemberAdd, "", []string{w[1], w[7], w[4]}
	case len(w) >= 8 && w[0] == "user" && w[2] == "removed" && w[3] == "by" && w[5] == "from" && w[6] == "group":
		return kMemberRemove, "", []string{w[1], w[7], w[4]}
	case len(w) >= 8 && w[0] == "members" && w[1] == "of" && w[2] == "group" && w[4] == "set" && w[5] == "by" && w[7] == "to":
		return kMembersSet, "", []string{strings.Join(w[8:], " "), w[3], w[6]}
	case len(w) >= 8 && w[0] == "administrators" && w[1] == "of" && w[2] == "group" && w[4] == "set" && w[5] == "by" && w[7] == "to":
		return kAdminsSet, "", []string{strings.Join(w[8:], " "), w[3], w[6]}
	case len(w) >= 6 && w[0] == "password" && w[1] == "of" && w[2] == "group" && (w[4] == "removed" || w[4] == "changed") && w[5] == "by":
		return kGroupPassword, w[4], []string{"", w[3], strings.Join(w[6:], " ")}
	case len(w) >= 6 && w[0] == "access" && w[1] == "to" && w[2] == "group" && w[4] == "restricted":
		return kGroupModify, "restricted", []string{"", w[3], ""}
	case strings.HasPrefix(op, "changing /etc/"):
		// groupmod: "changing /etc/group; group pt_ops/1001, new name: pt_ops2"
		return kGroupModify, op, nil
	}
	for _, p := range []string{"changing ", "changing-", "change ", "change-"} {
		if rest, ok := strings.CutPrefix(op, p); ok {
			rest = strings.ReplaceAll(rest, "-", " ")
			if f, ok := userFields[rest]; ok {
				return kUserModify, f, nil
			}
			return kUserModify, strings.ReplaceAll(rest, " ", "_"), nil
		}
	}
	return kSkip, "", nil
}

// gshadowSuffix is what gpasswd appends to its group name when the
// gshadow update is meant.
const gshadowSuffix = " in /etc/gshadow"

// mapRecord returns the event r records, or false when r is not an
// account change (or names too little to be one: 4.13's "adding user to
// group" does not say which group).
func (m *mapper) mapRecord(r *Record) (mapped, bool) {
	if !accountTypes[r.Type] {
		return mapped{}, false
	}
	k, detail, sentence := classify(r)
	if k == kSkip {
		return mapped{}, false
	}
	in := r.Inner
	acct := known(in.get("acct"))
	grp := known(in.get("grp"))
	id := in.get("id")
	enrichedID := known(r.Enriched.get("ID"))

	userByAcct := func() *event.User {
		u := &event.User{Name: acct}
		if acct == "" {
			u.UID = parseInt(id)
			u.Name = enrichedID
		}
		if u.Name == "" && u.UID == nil {
			return nil
		}
		return u
	}
	groupByAcct := func() *event.Group {
		g := &event.Group{Name: grp}
		if g.Name == "" {
			g.Name = acct
		}
		if g.Name == "" {
			g.GID = parseInt(id)
			g.Name = enrichedID
		}
		if g.Name == "" && g.GID == nil {
			return nil
		}
		return g
	}

	ev := event.Event{Time: r.Time}
	var key string
	switch k {
	case kUserCreate, kUserDelete, kPassword, kLock, kUnlock, kLockToggle, kUserModify, kUserRename:
		u := userByAcct()
		if u == nil {
			return mapped{}, false
		}
		ev.Target.User = u
		ev.Action = map[kind]event.Action{
			kUserCreate: event.UserCreate, kUserDelete: event.UserDelete, kPassword: event.PasswordChange,
			kLock: event.UserLock, kUnlock: event.UserUnlock, kLockToggle: event.UserModify,
			kUserModify: event.UserModify, kUserRename: event.UserRename,
		}[k]
		switch k {
		case kUserModify:
			ev.Changes = []event.Change{{Field: detail}}
		case kLockToggle:
			ev.Changes = []event.Change{{Field: "locked"}}
		case kUserRename:
			// The record names the account by id; ENRICHED resolves it when
			// auditd writes the record, after the rename: the new name.
			ev.Changes = []event.Change{{Field: "name", New: enrichedID}}
			ev.Target.User.Name = enrichedID
		case kPassword:
			ev.Changes = []event.Change{{Field: "password", Old: event.Redacted, New: event.Redacted}}
		}
	case kGroupCreate, kGroupDelete, kGroupModify, kGroupPassword, kAdminsSet, kMembersSet:
		var g *event.Group
		if sentence != nil {
			g = &event.Group{Name: strings.TrimSuffix(sentence[1], gshadowSuffix)}
		} else {
			g = groupByAcct()
		}
		if g == nil {
			return mapped{}, false
		}
		ev.Target.Group = g
		ev.Action = map[kind]event.Action{
			kGroupCreate: event.GroupCreate, kGroupDelete: event.GroupDelete, kGroupModify: event.GroupModify,
			kGroupPassword: event.GroupModify, kAdminsSet: event.GroupModify, kMembersSet: event.GroupModify,
		}[k]
		switch k {
		case kGroupPassword:
			ev.Changes = []event.Change{{Field: "password", Old: event.Redacted, New: event.Redacted}}
			if detail == "removed" {
				ev.Changes = []event.Change{{Field: "password_state", New: "empty"}}
			}
		case kAdminsSet, kMembersSet:
			f := "administrators"
			if k == kMembersSet {
				f = "members"
			}
			c := event.Change{Field: f}
			if sentence != nil {
				c.New = strings.TrimSuffix(sentence[0], gshadowSuffix)
			}
			ev.Changes = []event.Change{c}
		case kGroupModify:
			ev.Changes = groupmodChanges(detail)
		}
	case kMemberAdd, kMemberRemove:
		var user, group string
		if sentence != nil {
			user, group = sentence[0], strings.TrimSuffix(sentence[1], gshadowSuffix)
		} else {
			user, group = acct, grp
		}
		if user == "" || group == "" {
			return mapped{}, false
		}
		ev.Target.User = &event.User{Name: user}
		ev.Target.Group = &event.Group{Name: group}
		ev.Action = event.GroupMemberAdd
		if k == kMemberRemove {
			ev.Action = event.GroupMemberRemove
		}
		if m.privileged[group] {
			ev.Target.Privileges = []string{"group:" + group}
			ev.Action = event.PrivilegeGrant
			if k == kMemberRemove {
				ev.Action = event.PrivilegeRevoke
			}
		}
	case kRole:
		user := acct
		if user == "" {
			user = known(r.Enriched.get("AUID"))
		}
		role := firstNonEmpty(in.get("new-role"), in.get("selected-context"), in.get("new-seuser"))
		if user == "" || role == "" || role == "?" {
			return mapped{}, false
		}
		ev.Action = event.PrivilegeGrant
		ev.Target.User = &event.User{Name: user}
		ev.Target.Privileges = []string{"selinux:" + role}
		for _, f := range []string{"seuser", "role", "range"} {
			if o, n := in.get("old-"+f), in.get("new-"+f); o != "" || n != "" {
				ev.Changes = append(ev.Changes, event.Change{Field: "selinux_" + f, Old: o, New: n})
			}
		}
	}

	ev.Outcome = outcome(in.get("res"))
	if k == kLockToggle && strings.Contains(r.Inner.get("op"), " ") {
		// shadow 4.13 passes result 0 to audit_logger here: res=failed
		// is printed even when usermod succeeded.
		ev.Outcome = event.OutcomeUnknown
	}
	m.actor(r, &ev)
	m.origin(r, &ev)
	key = string(ev.Action) + "|" + targetKey(&ev)
	return mapped{ev: ev, key: key}, true
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// groupmodChanges reads groupmod's "changing /etc/group; group a/1001,
// new name: b, new gid: 6000" op.
func groupmodChanges(op string) []event.Change {
	_, desc, ok := strings.Cut(op, "; ")
	if !ok {
		return nil
	}
	parts := strings.Split(desc, ", ")
	oldName, oldGID := "", ""
	if g, ok := strings.CutPrefix(parts[0], "group "); ok {
		oldName, oldGID, _ = strings.Cut(g, "/")
	}
	var out []event.Change
	for _, p := range parts[1:] {
		switch {
		case strings.HasPrefix(p, "new name: "):
			out = append(out, event.Change{Field: "name", Old: oldName, New: strings.TrimPrefix(p, "new name: ")})
		case strings.HasPrefix(p, "new gid: "):
			out = append(out, event.Change{Field: "gid", Old: oldGID, New: strings.TrimPrefix(p, "new gid: ")})
		case p == "new password":
			out = append(out, event.Change{Field: "password", Old: event.Redacted, New: event.Redacted})
		}
	}
	return out
}

func targetKey(ev *event.Event) string {
	var b strings.Builder
	if u := ev.Target.User; u != nil {
		b.WriteString("u:" + u.Name)
		if u.UID != nil {
			b.WriteString("/" + strconv.FormatInt(*u.UID, 10))
		}
	}
	if g := ev.Target.Group; g != nil {
		b.WriteString(" g:" + g.Name)
		if g.GID != nil {
			b.WriteString("/" + strconv.FormatInt(*g.GID, 10))
		}
	}
	return b.String()
}

func outcome(res string) event.Outcome {
	switch res {
	case "success", "yes", "1":
		return event.OutcomeSuccess
	case "failed", "no", "0":
		return event.OutcomeFailure
	}
	return event.OutcomeUnknown
}

// actor: the login user (auid), which survives sudo and su, when the
// session has one; else the process's own uid.
func (m *mapper) actor(r *Record, ev *event.Event) {
	auid, uid := r.Outer.get("auid"), r.Outer.get("uid")
	if !unset(auid) {
		ev.Actor = event.Actor{
			UID:  parseInt(auid),
			Name: known(r.Enriched.get("AUID")),
			Type: event.ActorHuman,
		}
		if ses := r.Outer.get("ses"); !unset(ses) {
			ev.Actor.Session = ses
		}
		if uid != auid && !unset(uid) {
			ev.Actor.OnBehalfOf = firstNonEmpty(known(r.Enriched.get("UID")), "uid "+uid)
		}
		return
	}
	ev.Actor = event.Actor{Type: event.ActorSystem, UID: parseInt(uid), Name: known(r.Enriched.get("UID"))}
	if ev.Actor.UID == nil && ev.Actor.Name == "" {
		ev.Actor.Type = event.ActorUnknown
	}
}

func (m *mapper) origin(r *Record, ev *event.Event) {
	o := event.Origin{System: "linux", Host: firstNonEmpty(r.Node, m.hostname)}
	exe := known(r.Inner.get("exe"))
	if exe == "" {
		exe = known(r.Outer.get("exe"))
	}
	if exe != "" {
		o.Program = path.Base(exe)
	} else if c := known(r.Outer.get("comm")); c != "" {
		o.Program = c
	}
	if p := parseInt(r.Outer.get("pid")); p != nil {
		o.PID = int(*p)
	}
	if t := known(r.Inner.get("terminal")); t != "" && t != "(none)" {
		o.TTY = t
	}
	if a := known(r.Inner.get("addr")); a != "" {
		o.IP = a
	}
	ev.Origin = o
}
