package alerts

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/provtrail/provtrail/event"
)

// TestWantsGuards: Wants lets through every event a rule fires or keeps
// state for, and filters on the fields rules test with literals.
func TestWantsGuards(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.hcl")
	writeFileT(t, path, `
variables {
  admins = ["root", "alice"]
}
alert "svc" {
  when = event.action == "user.create" && event.actor.name == "svc-1"
}
alert "fail" {
  when = (event.action == "password.change" && event.outcome == "failure") || (event.action == "user.lock" && event.outcome == "failure")
}
alert "hosts" {
  when = contains(["db1", "db2"], event.origin.host) && event.action == "user.delete"
}
alert "byvar" {
  when = event.action == "group.member.add" && contains(var.admins, event.actor.name)
}
alert "seq" {
  sequence {
    first  = event.action == "user.create" && event.origin.system == "linux"
    then   = event.action == "user.delete" && event.target.user.name == "tmp"
    within = "1h"
  }
}
`)
	cfg, ctx := loadRules(t, path)
	e, err := New(context.Background(), cfg, ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, tc := range []struct {
		f    Fields
		want bool
	}{
		{Fields{Action: "user.create", Actor: "svc-1", System: "aws"}, true},
		{Fields{Action: "user.create", Actor: "svc-2", System: "aws"}, false},
		{Fields{Action: "user.create", Actor: "svc-2", System: "linux"}, true}, // seq first
		{Fields{Action: "password.change", Outcome: "failure"}, true},
		{Fields{Action: "password.change", Outcome: "success"}, false},
		{Fields{Action: "user.lock", Outcome: "failure"}, true},
		{Fields{Action: "user.delete", Host: "db2"}, true},
		{Fields{Action: "user.delete", Host: "web1"}, false},
		{Fields{Action: "user.delete", Host: "web1", User: "tmp"}, true}, // seq then
		{Fields{Action: "group.member.add", Actor: "bob"}, true},         // var: not a literal, no guard
		{Fields{Action: "user.modify"}, false},
	} {
		if got := e.Wants(&tc.f); got != tc.want {
			t.Errorf("Wants(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	// What Wants filters out never fires: evaluate the filtered events and
	// check that none raises an alert.
	var sink memSink
	e2, err := New(context.Background(), cfg, ctx, Options{Sink: &sink})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	skipped := []Indexed{
		ev(1, event.UserCreate, 0, func(x *event.Event) { x.Actor.Name = "svc-2"; x.Origin.System = "aws" }),
		ev(2, event.PasswordChange, 0, func(x *event.Event) { x.Outcome = event.OutcomeSuccess }),
		ev(3, event.UserDelete, 0, func(x *event.Event) { x.Origin.Host = "web1" }),
	}
	for _, ix := range skipped {
		f := Fields{Action: string(ix.Event.Action), Outcome: string(ix.Event.Outcome), Actor: ix.Event.Actor.Name, Host: ix.Event.Origin.Host, System: ix.Event.Origin.System}
		if ix.Event.Target.User != nil {
			f.User = ix.Event.Target.User.Name
		}
		if e2.Wants(&f) {
			t.Errorf("event %s not filtered", ix.Event.ID)
		}
	}
	if err := e2.Evaluate(context.Background(), skipped); err != nil {
		t.Fatal(err)
	}
	if r := sink.rules(); len(r) != 0 {
		t.Errorf("filtered events fired %v", r)
	}
	// And the same engine fires for an event Wants lets through.
	failed := ev(4, event.PasswordChange, 0, func(x *event.Event) { x.Outcome = event.OutcomeFailure })
	if !e2.Wants(&Fields{Action: "password.change", Outcome: "failure", Actor: "alice"}) {
		t.Fatal("failure not wanted")
	}
	if err := e2.Evaluate(context.Background(), []Indexed{failed}); err != nil {
		t.Fatal(err)
	}
	if r := sink.rules(); len(r) != 1 || r[0] != "fail" {
		t.Errorf("fired %v, want [fail]", r)
	}
}
