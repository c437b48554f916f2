package correlate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

type input struct {
	Key   string      `json:"key"`
	Event event.Event `json:"event"`
	Pos   string      `json:"pos"`
}

func loadInputs(t *testing.T, path string) []input {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []input
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var in input
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			t.Fatal(err)
		}
		out = append(out, in)
	}
	return out
}

func rec(in input) collectors.Record {
	return collectors.Record{Event: in.Event, Position: collectors.Position(in.Pos)}
}

var t0 = time.Date(2026, 11, 25, 17, 38, 41, 0, time.UTC)

// TestSudoUseradd: authlog, auditd and accounts report one sudo useradd
// (two changes: the private group and the user); each change comes out
// once, with all three records as evidence, audit's auid as the actor and
// audit's id; the direct edit no log saw comes out on its own.
func TestSudoUseradd(t *testing.T) {
	ins := loadInputs(t, "testdata/sudo_useradd.ndjson")
	c := New(Config{})
	var outs []Output
	now := t0
	for _, key := range []string{"authlog/system", "auditd/local", "accounts/local"} {
		var recs []collectors.Record
		for _, in := range ins {
			if in.Key == key {
				recs = append(recs, rec(in))
			}
		}
		outs = append(outs, c.Add(now, key, recs)...)
		now = now.Add(300 * time.Millisecond) // accounts waits for its debounce
	}
	if len(outs) != 0 {
		t.Fatalf("released before the hold: %+v", outs)
	}
	if d, ok := c.NextDeadline(); !ok || !d.Equal(t0.Add(DefaultHold)) {
		t.Errorf("deadline %v %v", d, ok)
	}
	outs = c.Expire(t0.Add(DefaultHold + time.Second))
	var got []string
	positions := map[string]collectors.Position{}
	for _, o := range outs {
		for k, p := range o.Positions {
			positions[k] = p
		}
		if o.Event == nil {
			continue
		}
		e := o.Event
		if err := event.Validate(e); err != nil {
			t.Errorf("%s: %v", e.Action, err)
		}
		target := ""
		if e.Target.User != nil {
			target = e.Target.User.Name
		} else if e.Target.Group != nil {
			target = e.Target.Group.Name
		}
		got = append(got, fmt.Sprintf("%s %s src=%s raws=%d actor=%s/%v", e.Action, target, e.Source.Collector,
			strings.Count(e.Raw, "\n")+1-strings.Count(e.Raw, "\n+"), e.Actor.Name, uidOf(e.Actor.UID)))
		switch target {
		case "pt_dave":
			if e.Actor.Session != "1" || e.Origin.PID != 23257 || e.Origin.TTY != "pts/1" {
				t.Errorf("%s: actor %+v origin %+v", e.Action, e.Actor, e.Origin)
			}
		case "pt_evil":
			if e.Severity != event.SeverityCritical || e.Actor.Type != event.ActorUnknown {
				t.Errorf("pt_evil: %+v", e)
			}
		}
	}
	want := []string{
		"group.create pt_dave src=auditd raws=3 actor=pt_admin/4322",
		"user.create pt_dave src=auditd raws=3 actor=pt_admin/4322",
		"user.create pt_evil src=accounts raws=1 actor=/-",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, key := range []string{"authlog/system", "auditd/local", "accounts/local"} {
		var last string
		for _, in := range ins {
			if in.Key == key {
				last = in.Pos
			}
		}
		if string(positions[key]) != last {
			t.Errorf("%s: committed %q, want the last record's %q", key, positions[key], last)
		}
	}
	if c.Held() != 0 {
		t.Errorf("%d still held", c.Held())
	}
	// The merged user event keeps the diff's details and the audit ids.
	for _, o := range outs {
		if e := o.Event; e != nil && e.Action == event.UserCreate && e.Target.User.Name == "pt_dave" {
			if e.ID != ins[3].Event.ID || e.Target.User.UID == nil || *e.Target.User.UID != 4325 {
				t.Errorf("id %s target %+v", e.ID, e.Target.User)
			}
			var fields []string
			for _, ch := range e.Changes {
				fields = append(fields, ch.Field)
			}
			if !slices.Contains(fields, "shell") || !slices.Contains(fields, "home") {
				t.Errorf("changes %v", fields)
			}
		}
	}
}

func uidOf(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func mk(collector, id string, action event.Action, user, group string, tm time.Time, pid int) event.Event {
	e := event.Event{ID: id, Time: tm, ObservedTime: tm, Action: action, Outcome: event.OutcomeSuccess,
		Origin: event.Origin{System: "linux", Host: "vm", PID: pid}, Source: event.Source{Collector: collector}, Raw: collector + ":" + id}
	if user != "" {
		e.Target.User = &event.User{Name: user}
	}
	if group != "" {
		e.Target.Group = &event.Group{Name: group}
	}
	if action == event.PrivilegeGrant || action == event.PrivilegeRevoke {
		e.Target.Privileges = []string{"group:" + group}
	}
	e.Complete()
	return e
}

func r(e event.Event, pos string) collectors.Record {
	return collectors.Record{Event: e, Position: collectors.Position(pos)}
}

// TestPositionsWaitForEarlierRecords: a collector's position is committed
// only when every earlier record of it was released.
func TestPositionsWaitForEarlierRecords(t *testing.T) {
	c := New(Config{})
	x := mk("auditd", "a1", event.UserCreate, "x", "", t0, 10)
	y := mk("authlog", "l2", event.UserCreate, "y", "", t0, 11)
	x2 := mk("authlog", "l3", event.UserCreate, "x", "", t0, 10)
	c.Add(t0, "auditd/local", []collectors.Record{r(x, "a1")})
	c.Add(t0.Add(time.Second), "authlog/system", []collectors.Record{r(y, "l2"), r(x2, "l3")})
	outs := c.Expire(t0.Add(DefaultHold))
	if len(outs) != 1 || outs[0].Event.Target.User.Name != "x" {
		t.Fatalf("first release: %+v", outs)
	}
	if _, ok := outs[0].Positions["authlog/system"]; ok {
		t.Errorf("authlog position committed while its earlier record y is held: %v", outs[0].Positions)
	}
	if string(outs[0].Positions["auditd/local"]) != "a1" {
		t.Errorf("auditd position: %v", outs[0].Positions)
	}
	outs = c.Expire(t0.Add(time.Second + DefaultHold))
	if len(outs) != 1 || string(outs[0].Positions["authlog/system"]) != "l3" {
		t.Fatalf("second release: %+v", outs)
	}
}

// TestLateEvidence: after an event was released, the accounts diff of the
// same change is suppressed (positions only); a late log record is emitted.
func TestLateEvidence(t *testing.T) {
	c := New(Config{})
	c.Add(t0, "authlog/system", []collectors.Record{r(mk("authlog", "l1", event.PrivilegeGrant, "bob", "sudo", t0, 5), "l1")})
	if n := len(c.Expire(t0.Add(DefaultHold))); n != 1 {
		t.Fatalf("released %d", n)
	}
	now := t0.Add(DefaultHold + 500*time.Millisecond)
	outs := c.Add(now, "accounts/local", []collectors.Record{r(mk("accounts", "d1", event.GroupMemberAdd, "bob", "sudo", t0.Add(time.Second), 0), "d1")})
	if len(outs) != 1 || outs[0].Event != nil || string(outs[0].Positions["accounts/local"]) != "d1" {
		t.Fatalf("late diff: %+v", outs)
	}
	outs = c.Add(now, "auditd/local", []collectors.Record{r(mk("auditd", "a1", event.PrivilegeGrant, "bob", "sudo", t0, 5), "a1")})
	if len(outs) != 1 || outs[0].Event == nil || outs[0].Event.ID != "a1" {
		t.Fatalf("late audit: %+v", outs)
	}
	// Long after the window, the same key is a new change.
	later := now.Add(time.Minute)
	c.Expire(later)
	outs = c.Add(later, "accounts/local", []collectors.Record{r(mk("accounts", "d2", event.GroupMemberAdd, "bob", "sudo", later, 0), "d2")})
	if len(outs) != 0 || c.Held() != 1 {
		t.Fatalf("new change after the window: %+v held %d", outs, c.Held())
	}
}

// TestGenericSameProcess: shadow 4.13's audit record for usermod -L only
// says "updating passwd" (user.modify, outcome unknown); the auth line of
// the same pid says "lock user": one user.lock.
func TestGenericSameProcess(t *testing.T) {
	c := New(Config{})
	a := mk("auditd", "a1", event.UserModify, "pt_alice", "", t0, 20189)
	a.Target.User.UID = event.Int64(1001)
	a.Changes = []event.Change{{Field: "locked"}}
	a.Outcome = event.OutcomeUnknown
	l := mk("authlog", "l1", event.UserLock, "pt_alice", "", t0, 20189)
	c.Add(t0, "auditd/local", []collectors.Record{r(a, "a1")})
	c.Add(t0, "authlog/system", []collectors.Record{r(l, "l1")})
	outs := c.Flush(t0)
	if len(outs) != 1 {
		t.Fatalf("%d outputs", len(outs))
	}
	e := outs[0].Event
	if e.Action != event.UserLock || e.Outcome != event.OutcomeSuccess || e.ID != "a1" || e.Target.User.UID == nil {
		t.Errorf("merged: %+v", e)
	}
	if err := event.Validate(e); err != nil {
		t.Error(err)
	}
	// A different pid is a different change.
	c = New(Config{})
	c.Add(t0, "auditd/local", []collectors.Record{r(a, "a2")})
	l.Origin.PID = 99
	c.Add(t0, "authlog/system", []collectors.Record{r(l, "l2")})
	if outs := c.Flush(t0); len(outs) != 2 {
		t.Errorf("different pids merged: %d outputs", len(outs))
	}
}

// TestPrivilegeOverMembership: one collector calls it group.member.add,
// another privilege.grant (a privileged group): one privilege.grant.
func TestPrivilegeOverMembership(t *testing.T) {
	c := New(Config{})
	c.Add(t0, "accounts/local", []collectors.Record{r(mk("accounts", "d1", event.GroupMemberAdd, "bob", "wheel", t0, 0), "d1")})
	c.Add(t0, "authlog/system", []collectors.Record{r(mk("authlog", "l1", event.PrivilegeGrant, "bob", "wheel", t0.Add(time.Second), 7), "l1")})
	outs := c.Flush(t0)
	if len(outs) != 1 || outs[0].Event.Action != event.PrivilegeGrant || outs[0].Event.Source.Collector != "authlog" {
		t.Fatalf("%+v", outs)
	}
	if err := event.Validate(outs[0].Event); err != nil {
		t.Error(err)
	}
	if !outs[0].Event.Time.Equal(t0) {
		t.Errorf("time %v, want the earliest", outs[0].Event.Time)
	}
}

// TestWindowAndHost: the same key outside the window, or on another host,
// is another change.
func TestWindowAndHost(t *testing.T) {
	c := New(Config{Window: time.Second})
	a := mk("authlog", "l1", event.UserDelete, "bob", "", t0, 1)
	b := mk("auditd", "a1", event.UserDelete, "bob", "", t0.Add(3*time.Second), 1)
	h := mk("auditd", "a2", event.UserDelete, "bob", "", t0, 1)
	h.Origin.Host = "other.example.com"
	c.Add(t0, "authlog/system", []collectors.Record{r(a, "l1")})
	c.Add(t0, "auditd/local", []collectors.Record{r(b, "a1"), r(h, "a2")})
	if outs := c.Flush(t0); len(outs) != 3 {
		t.Errorf("%d outputs, want 3", len(outs))
	}
	// vm and vm.example.com are one host.
	c = New(Config{Window: time.Second})
	h.Origin.Host = "VM.example.com"
	c.Add(t0, "authlog/system", []collectors.Record{r(a, "l1")})
	c.Add(t0, "auditd/local", []collectors.Record{r(h, "a2")})
	if outs := c.Flush(t0); len(outs) != 1 {
		t.Errorf("%d outputs, want 1", len(outs))
	}
}

// TestPassThroughAndBounds: other collectors are not held; MaxHeld
// releases the oldest early; a re-read record merges into its twin.
func TestPassThroughAndBounds(t *testing.T) {
	c := New(Config{MaxHeld: 2})
	outs := c.Add(t0, "okta/prod", []collectors.Record{r(mk("okta", "o1", event.UserCreate, "ann", "", t0, 0), "o1")})
	if len(outs) != 1 || outs[0].Event.ID != "o1" || string(outs[0].Positions["okta/prod"]) != "o1" {
		t.Fatalf("pass-through: %+v", outs)
	}
	var recs []collectors.Record
	for i := range 3 {
		recs = append(recs, r(mk("authlog", fmt.Sprint("l", i), event.UserCreate, fmt.Sprint("u", i), "", t0, i+1), fmt.Sprint("p", i)))
	}
	outs = c.Add(t0, "authlog/system", recs)
	if len(outs) != 1 || outs[0].Event.ID != "l0" || c.Held() != 2 {
		t.Fatalf("bound: %+v held %d", outs, c.Held())
	}
	outs = c.Add(t0, "authlog/system", []collectors.Record{recs[1]})
	if len(outs) != 0 || c.Held() != 2 {
		t.Fatalf("re-read: %+v", outs)
	}
	outs = c.Flush(t0)
	if len(outs) != 2 || strings.Count(outs[0].Event.Raw, "\n") != 0 {
		t.Fatalf("flush: %+v", outs)
	}
	if string(outs[1].Positions["authlog/system"]) != "p1" {
		t.Errorf("positions %v", outs[1].Positions)
	}
}

// TestModifyKinds: user.modify events match per attribute, and passwd's
// ambiguous "password ... changed by" line matches the diff's lock.
func TestModifyKinds(t *testing.T) {
	c := New(Config{})
	mod := func(col, id string, pid int, fields ...string) event.Event {
		e := mk(col, id, event.UserModify, "bob", "", t0, pid)
		for _, f := range fields {
			e.Changes = append(e.Changes, event.Change{Field: f})
		}
		return e
	}
	// passwd -l bob; then chsh bob, both within the window.
	c.Add(t0, "authlog/system", []collectors.Record{
		r(mod("authlog", "l1", 5, "password_settings"), "l1"),
		r(mod("authlog", "l2", 6, "shell"), "l2"),
	})
	c.Add(t0, "accounts/local", []collectors.Record{
		r(mk("accounts", "d1", event.UserLock, "bob", "", t0, 0), "d1"),
		r(mod("accounts", "d2", 0, "shell", "comment"), "d2"),
	})
	// usermod -c's audit record of another pid merges into the diff's
	// shell+comment event too.
	c.Add(t0, "auditd/local", []collectors.Record{r(mod("auditd", "a1", 7, "comment"), "a1")})
	outs := c.Flush(t0)
	var got []string
	for _, o := range outs {
		got = append(got, fmt.Sprintf("%s %d", o.Event.Action, strings.Count(o.Event.Raw, "\n")+1))
	}
	want := []string{"user.lock 2", "user.modify 3"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
