package entitlements

import (
	"fmt"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func mk(day int, action event.Action, actor, user, group string, privs ...string) event.Event {
	e := event.Event{
		ID: fmt.Sprintf("e%d-%s-%s-%s", day, action, user, group), Time: t0.AddDate(0, 0, day), Action: action,
		Outcome: event.OutcomeSuccess, Actor: event.Actor{Name: actor},
		Origin: event.Origin{System: "linux", Host: "web-01"}, Target: event.Target{Privileges: privs},
	}
	if user != "" {
		e.Target.User = &event.User{Name: user}
	}
	if group != "" {
		e.Target.Group = &event.Group{Name: group}
	}
	return e
}

func TestTableFollowsTheStream(t *testing.T) {
	events := []event.Event{
		mk(0, event.GroupMemberAdd, "alice", "bob", "sudo"),
		mk(1, event.GroupMemberAdd, "carol", "bob", "sudo"), // re-add keeps the first grant
		mk(1, event.GroupMemberAdd, "alice", "dave", "docker"),
		mk(2, event.PrivilegeGrant, "root", "erin", "", "ALL=(ALL) ALL"),
		mk(3, event.GroupMemberAdd, "alice", "frank", "wheel"),
		mk(4, event.UserDelete, "root", "frank", ""),
		mk(5, event.GroupMemberRemove, "alice", "dave", "docker"),
	}
	failed := mk(6, event.GroupMemberAdd, "mallory", "mallory", "sudo")
	failed.Outcome = event.OutcomeFailure
	events = append(events, failed)
	tab := NewTable()
	for i := range events {
		tab.Apply(Changes(&events[i], int64(i)))
	}
	got := tab.Holdings(nil)
	if len(got) != 2 {
		t.Fatalf("holdings = %+v, want bob in sudo and erin's privilege", got)
	}
	if h := got[0]; h.Kind != KindGroup || h.Name != "sudo" || h.User != "bob" || h.GrantedBy != "alice" || !h.Since.Equal(t0) || h.LogIndex != 0 {
		t.Errorf("bob's sudo = %+v", h)
	}
	if h := got[1]; h.Kind != KindPrivilege || h.Name != "ALL=(ALL) ALL" || h.User != "erin" || h.Scope != "web-01" {
		t.Errorf("erin's privilege = %+v", h)
	}
}

func TestGroupDeleteDropsItsMembers(t *testing.T) {
	tab := NewTable()
	for _, e := range []event.Event{
		mk(0, event.GroupMemberAdd, "a", "x", "ops"),
		mk(0, event.GroupMemberAdd, "a", "y", "ops"),
		mk(0, event.GroupMemberAdd, "a", "y", "dev"),
		mk(1, event.GroupDelete, "a", "", "ops"),
	} {
		tab.Apply(Changes(&e, 0))
	}
	if got := tab.Holdings(nil); len(got) != 1 || got[0].Name != "dev" {
		t.Errorf("holdings = %+v", got)
	}
}

func TestDrift(t *testing.T) {
	events := []event.Event{
		mk(0, event.GroupMemberAdd, "a", "old", "sudo"),     // before the window
		mk(10, event.GroupMemberAdd, "a", "kept", "sudo"),   // granted, never revoked
		mk(11, event.GroupMemberAdd, "a", "undone", "sudo"), // granted then revoked
		mk(12, event.GroupMemberRemove, "a", "undone", "sudo"),
		mk(25, event.GroupMemberAdd, "a", "late", "sudo"),    // after the window
		mk(26, event.GroupMemberRemove, "a", "kept", "sudo"), // revoked after the window: still drift at `to`
	}
	idx := make([]int64, len(events))
	got := Drift(events, idx, t0.AddDate(0, 0, 5), t0.AddDate(0, 0, 20))
	if len(got) != 1 || got[0].User != "kept" {
		t.Errorf("drift = %+v, want only kept", got)
	}
}
