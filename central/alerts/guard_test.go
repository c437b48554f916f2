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
		{Fields{Action: "group.member.add", Actor: "bob"}, false},        // var.admins is fixed: a guard
		{Fields{Action: "group.member.add", Actor: "alice"}, true},
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

// TestExactGuardsAgreeWithHCL: for conditions the engine decides by their
// guards, the guards give what HCL gives, on events that vary every tested
// field (set, other value, absent).
func TestExactGuardsAgreeWithHCL(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.hcl")
	writeFileT(t, path, `
alert "a" {
  when = event.action == "user.create" && event.actor.name == "svc"
}
alert "b" {
  when = contains(["user.delete", "user.lock"], event.action) && (event.outcome == "failure") && contains(["db1", "db2"], event.origin.host)
}
alert "c" {
  when = event.target.user.name == "tmp" && event.target.group.name == "wheel" && event.origin.system == "linux"
}
alert "d" {
  when = event.actor.name == "x" || event.action == "user.create"
}
`)
	cfg, ctx := loadRules(t, path)
	e, err := New(context.Background(), cfg, ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	exact := map[string]bool{}
	for _, c := range e.comp {
		exact[c.r.Name] = c.g.whenExact
	}
	if !exact["a"] || !exact["b"] || !exact["c"] || exact["d"] {
		t.Fatalf("exactness %v", exact)
	}
	actions := []event.Action{event.UserCreate, event.UserDelete, event.UserLock}
	n := 0
	for _, action := range actions {
		for _, actor := range []string{"svc", "other", ""} {
			for _, outcome := range []event.Outcome{event.OutcomeFailure, event.OutcomeSuccess} {
				for _, host := range []string{"db1", "web", ""} {
					for _, user := range []string{"tmp", "bob", ""} {
						for _, grp := range []string{"wheel", ""} {
							ix := ev(n, action, 0, func(x *event.Event) {
								x.Actor = event.Actor{Name: actor, ID: "svc"}
								x.Outcome = outcome
								x.Origin.Host, x.Origin.System = host, "linux"
								x.Target.User = nil
								if user != "" {
									x.Target.User = &event.User{Name: user}
								} else {
									x.Target.User = &event.User{ID: "tmp"}
								}
								if grp != "" {
									x.Target.Group = &event.Group{Name: grp}
								}
							})
							n++
							fx := exactFields(ix.Event)
							hctx := withEvent(e.evalCtx, ix.Event, e.need)
							for _, c := range e.comp {
								r, g := c.r, c.g
								if !g.whenExact || (r.actions != nil && !r.actions[string(action)]) {
									continue
								}
								want, err := evalBool(r.When, hctx)
								if err != nil {
									want = false
								}
								if got := passes(g.when, &fx); got != want {
									t.Errorf("rule %s on %+v: guards %v, HCL %v", r.Name, fx, got, want)
								}
							}
						}
					}
				}
			}
		}
	}
}
