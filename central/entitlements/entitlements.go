// Package entitlements derives who holds which group membership or
// privilege now, since when and granted by whom, from the stream of stored
// events. Changes is a pure function of one event, so central applies its
// result in the same transaction that stores the event, and a rebuild from
// the event history gives the same view.
package entitlements

import (
	"sort"
	"time"

	"github.com/provtrail/provtrail/event"
)

// Kind says what is held.
type Kind string

// Kinds of entitlement.
const (
	KindGroup     Kind = "group"
	KindPrivilege Kind = "privilege"
)

// Key identifies one entitlement: a user holding a group membership or a
// privilege on one system instance.
type Key struct {
	// Scope is the system the entitlement lives in: the host for Linux
	// sources, the origin instance (LDAP server, cloud account, tenant)
	// otherwise.
	System string `json:"system"`
	Scope  string `json:"scope"`
	Kind   Kind   `json:"kind"`
	Name   string `json:"name"`
	User   string `json:"user"`
}

// Holding is a current entitlement.
type Holding struct {
	Key
	Since     time.Time `json:"since"`
	GrantedBy string    `json:"granted_by,omitempty"`
	EventID   string    `json:"event_id"`
	LogIndex  int64     `json:"log_index"`
}

// Op is what an event does to the entitlement table.
type Op int

// Operations.
const (
	// Grant adds Holding (keeping an existing holding's Since).
	Grant Op = iota + 1
	// Revoke removes the entitlement at Key.
	Revoke
	// RevokeUser removes every entitlement of Key.User in Key.System/Scope.
	RevokeUser
	// RevokeName removes every holder of Key.Kind/Key.Name in Key.System/Scope.
	RevokeName
)

// Change is one operation on the entitlement table.
type Change struct {
	Op      Op
	Holding Holding
}

// Changes returns what ev does to current entitlements. Failed changes do
// nothing.
func Changes(ev *event.Event, logIndex int64) []Change {
	if ev.Outcome == event.OutcomeFailure {
		return nil
	}
	scope := ev.Origin.Instance
	if scope == "" {
		scope = ev.Origin.Host
	}
	base := Holding{
		Key:       Key{System: ev.Origin.System, Scope: scope},
		Since:     ev.Time,
		GrantedBy: ev.Actor.Name,
		EventID:   ev.ID,
		LogIndex:  logIndex,
	}
	user := ""
	if u := ev.Target.User; u != nil {
		user = firstNonEmpty(u.Name, u.ID, u.Email)
	}
	group := ""
	if g := ev.Target.Group; g != nil {
		group = firstNonEmpty(g.Name, g.ID)
	}
	with := func(op Op, kind Kind, name, user string) Change {
		h := base
		h.Kind, h.Name, h.User = kind, name, user
		return Change{Op: op, Holding: h}
	}
	var out []Change
	switch ev.Action {
	case event.GroupMemberAdd:
		if user != "" && group != "" {
			out = append(out, with(Grant, KindGroup, group, user))
		}
	case event.GroupMemberRemove:
		if user != "" && group != "" {
			out = append(out, with(Revoke, KindGroup, group, user))
		}
	case event.PrivilegeGrant, event.PrivilegeRevoke:
		holder := user
		if holder == "" && group != "" {
			holder = "group:" + group
		}
		if holder == "" {
			return nil
		}
		op := Grant
		if ev.Action == event.PrivilegeRevoke {
			op = Revoke
		}
		for _, p := range ev.Target.Privileges {
			out = append(out, with(op, KindPrivilege, p, holder))
		}
	case event.UserDelete:
		if user != "" {
			out = append(out, with(RevokeUser, "", "", user))
		}
	case event.GroupDelete:
		if group != "" {
			out = append(out, with(RevokeName, KindGroup, group, ""))
			out = append(out, with(RevokeUser, "", "", "group:"+group))
		}
	case event.UserRename:
		// A rename moves the holdings: revoke under the old name; the new
		// name's holdings appear as later membership events where sources
		// report them. Where the event carries the old name, drop it.
		for _, c := range ev.Changes {
			if c.Field == "name" && c.Old != "" {
				out = append(out, with(RevokeUser, "", "", c.Old))
			}
		}
	}
	return out
}

// Table is an in-memory entitlement table; central's store keeps the same
// data in SQL. It is used for rebuilds, drift reports and tests.
type Table struct {
	m map[Key]Holding
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{m: map[Key]Holding{}} }

// Apply applies changes in order.
func (t *Table) Apply(changes []Change) {
	for _, c := range changes {
		h := c.Holding
		switch c.Op {
		case Grant:
			if old, ok := t.m[h.Key]; ok {
				h.Since, h.GrantedBy, h.EventID, h.LogIndex = old.Since, old.GrantedBy, old.EventID, old.LogIndex
			}
			t.m[h.Key] = h
		case Revoke:
			delete(t.m, h.Key)
		case RevokeUser:
			for k := range t.m {
				if k.System == h.System && k.Scope == h.Scope && k.User == h.User {
					delete(t.m, k)
				}
			}
		case RevokeName:
			for k := range t.m {
				if k.System == h.System && k.Scope == h.Scope && k.Kind == h.Kind && k.Name == h.Name {
					delete(t.m, k)
				}
			}
		}
	}
}

// Holdings returns the current holdings matching filter (nil: all), sorted
// by system, scope, kind, name and user.
func (t *Table) Holdings(filter func(Holding) bool) []Holding {
	var out []Holding
	for _, h := range t.m {
		if filter == nil || filter(h) {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i].Key, out[j].Key) })
	return out
}

// Drift returns the entitlements granted between from and to (inclusive of
// from, exclusive of to) that are still held at to: what was granted and
// not revoked. events must be in log order.
func Drift(events []event.Event, logIndexes []int64, from, to time.Time) []Holding {
	t := NewTable()
	granted := map[Key]bool{}
	for i := range events {
		ev := &events[i]
		if !ev.Time.Before(to) {
			continue
		}
		changes := Changes(ev, logIndexes[i])
		if !ev.Time.Before(from) {
			for _, c := range changes {
				if c.Op == Grant {
					granted[c.Holding.Key] = true
				}
			}
		}
		t.Apply(changes)
	}
	return t.Holdings(func(h Holding) bool { return granted[h.Key] && !h.Since.Before(from) })
}

func less(a, b Key) bool {
	switch {
	case a.System != b.System:
		return a.System < b.System
	case a.Scope != b.Scope:
		return a.Scope < b.Scope
	case a.Kind != b.Kind:
		return a.Kind < b.Kind
	case a.Name != b.Name:
		return a.Name < b.Name
	}
	return a.User < b.User
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
