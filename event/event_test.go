package event

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func validEvent() Event {
	e := Event{
		ID:           NewID("authlog", "web-01", "2026-11-25T17:37:08.456929Z", "useradd", "1234", "new user: name=alice"),
		Time:         time.Date(2026, 11, 25, 17, 37, 8, 456929000, time.UTC),
		ObservedTime: time.Date(2026, 11, 25, 17, 37, 9, 0, time.UTC),
		Action:       UserCreate,
		Outcome:      OutcomeSuccess,
		Actor:        Actor{Name: "bob", Type: ActorHuman, Auth: "sudo", OnBehalfOf: "root"},
		Target:       Target{User: &User{Name: "alice", UID: Int64(1001)}},
		Origin:       Origin{System: "linux", Host: "web-01", Program: "useradd", PID: 1234},
		Source:       Source{Collector: "authlog", Instance: "system", File: "/var/log/auth.log", Offset: Int64(0)},
		Raw:          "2026-11-25T17:37:08.456929+00:00 web-01 useradd[1234]: new user: name=alice, UID=1001",
	}
	e.Complete()
	return e
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Event)
		wantErr string // substring; empty means valid
	}{
		{"valid", func(*Event) {}, ""},
		{"no id", func(e *Event) { e.ID = "" }, "id: is empty"},
		{"zero time", func(e *Event) { e.Time = time.Time{} }, "time: is not set"},
		{"local time", func(e *Event) { e.Time = e.Time.In(time.FixedZone("X", 3600)) }, "time: is not UTC"},
		{"unknown action", func(e *Event) { e.Action = "user.explode" }, `action: "user.explode" is not in the vocabulary`},
		{"bad outcome", func(e *Event) { e.Outcome = "maybe" }, "outcome:"},
		{"bad severity", func(e *Event) { e.Severity = "urgent" }, "severity:"},
		{"bad actor type", func(e *Event) { e.Actor.Type = "robot" }, "actor.type:"},
		{"no target", func(e *Event) { e.Target = Target{} }, "target: names no user"},
		{"empty target user", func(e *Event) { e.Target.User = &User{} }, "target.user: is present but empty"},
		{"membership without group", func(e *Event) { e.Action = GroupMemberAdd; e.Complete() }, "target.group: is required"},
		{"grant without privileges", func(e *Event) { e.Action = PrivilegeGrant; e.Complete() }, "target.privileges: is required"},
		{"ocsf mismatch", func(e *Event) { e.OCSF.ActivityID = 6 }, "ocsf:"},
		{"no collector", func(e *Event) { e.Source.Collector = "" }, "source.collector: is empty"},
		{"empty change field", func(e *Event) { e.Changes = []Change{{New: "x"}} }, "changes[0].field: is empty"},
		{"hash in raw", func(e *Event) { e.Raw = "alice:$y$j9T$abcdefgh$0123456789abcdef:19000:0:99999:7:::" }, "raw: holds what looks like a password hash"},
		{"ldap hash in change", func(e *Event) { e.Changes = []Change{{Field: "userPassword", New: "{SSHA}abcd"}} }, "changes[0]: holds what looks like"},
		{"redacted change", func(e *Event) { e.Changes = []Change{{Field: "userPassword", New: Redacted}} }, ""},
		{"membership ok", func(e *Event) {
			e.Action = GroupMemberAdd
			e.Target.Group = &Group{Name: "sudo", GID: Int64(27)}
			e.Complete()
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := validEvent()
			tt.mutate(&e)
			err := Validate(&e)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewIDDeterministicAndUnambiguous(t *testing.T) {
	a := NewID("authlog", "host", "line")
	if b := NewID("authlog", "host", "line"); a != b {
		t.Fatalf("same record gave ids %s and %s", a, b)
	}
	if c := NewID("authlog", "hos", "tline"); a == c {
		t.Fatal("different splits of the same bytes gave the same id")
	}
	if d := NewID("okta", "host", "line"); a == d {
		t.Fatal("different collectors gave the same id")
	}
	if len(a) != 32 {
		t.Fatalf("id %q is %d characters, want 32", a, len(a))
	}
}

func TestEveryActionMapsToOCSF(t *testing.T) {
	want := map[Action]int{
		UserCreate: 300101, UserEnable: 300102, PasswordChange: 300103, PasswordReset: 300104,
		UserDisable: 300105, UserDelete: 300106, UserLock: 300109, MFAEnable: 300110,
		MFADisable: 300111, UserUnlock: 300112, UserModify: 300199, UserRename: 300199,
		CredentialCreate: 300199, CredentialDelete: 300199,
		PrivilegeGrant: 300501, PrivilegeRevoke: 300502,
		GroupMemberAdd: 300603, GroupMemberRemove: 300604, GroupDelete: 300605, GroupCreate: 300606,
		GroupModify: 300699,
	}
	if got := len(Actions()); got != len(want) {
		t.Fatalf("vocabulary has %d actions, test knows %d", got, len(want))
	}
	for _, a := range Actions() {
		o, err := a.OCSF()
		if err != nil {
			t.Fatal(err)
		}
		if o.TypeUID != want[a] || o.CategoryUID != OCSFCategoryIAM || o.TypeUID != o.ClassUID*100+o.ActivityID {
			t.Errorf("%s maps to %+v, want type_uid %d", a, o, want[a])
		}
		info, _ := a.Info()
		if len(info.ECSType) == 0 {
			t.Errorf("%s has no ECS event.type", a)
		}
	}
	if _, err := Action("nope").OCSF(); err == nil {
		t.Error("unknown action mapped without error")
	}
}

func TestJSONFieldNames(t *testing.T) {
	e := validEvent()
	e.Target.Group = &Group{Name: "sudo", ID: "g", GID: Int64(27)}
	e.Target.User.Email = "a@example.com"
	e.Target.User.ID = "u"
	e.Target.Privileges = []string{"ALL"}
	e.Actor.ID, e.Actor.UID, e.Actor.Session = "1000", Int64(1000), "3"
	e.Origin.IP, e.Origin.UserAgent, e.Origin.TTY, e.Origin.Instance = "192.0.2.1", "ua", "pts/0", "i"
	e.Changes = []Change{{Field: "shell", Old: "/bin/sh", New: "/bin/bash"}}
	e.Source.Cursor, e.Source.EventID = "c", "e"
	b, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"id", "time", "observed_time", "action", "outcome", "severity",
		"actor.name", "actor.id", "actor.uid", "actor.type", "actor.session", "actor.auth",
		"target.user.name", "target.user.id", "target.user.uid", "target.user.email",
		"target.group.name", "target.group.id", "target.group.gid", "target.privileges",
		"origin.system", "origin.instance", "origin.host", "origin.ip", "origin.user_agent",
		"origin.tty", "origin.program", "origin.pid",
		"source.collector", "source.instance", "source.file", "source.offset", "source.cursor", "source.event_id",
		"raw", "ocsf.class_uid", "ocsf.activity_id", "ocsf.type_uid", "ocsf.category_uid",
	}
	for _, p := range paths {
		var cur any = m
		for _, part := range strings.Split(p, ".") {
			obj, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = obj[part]
		}
		if cur == nil {
			t.Errorf("JSON has no %s", p)
		}
	}
	if c := m["changes"].([]any)[0].(map[string]any); c["field"] != "shell" || c["old"] != "/bin/sh" || c["new"] != "/bin/bash" {
		t.Errorf("changes[0] = %v", c)
	}
	if got := m["time"]; got != "2026-11-25T17:37:08.456929Z" {
		t.Errorf("time = %v, want RFC 3339 nano UTC", got)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&back); err != nil {
		t.Errorf("round-tripped event invalid: %v", err)
	}
}

func TestECS(t *testing.T) {
	e := validEvent()
	e.Action = GroupMemberAdd
	e.Target.Group = &Group{Name: "sudo", GID: Int64(27)}
	e.Origin.IP = "192.0.2.7"
	e.Complete()
	doc := e.ECS()
	ev := doc["event"].(map[string]any)
	if ev["action"] != "group.member.add" || ev["outcome"] != "success" {
		t.Errorf("event = %v", ev)
	}
	if cat := ev["category"].([]string); len(cat) != 1 || cat[0] != "iam" {
		t.Errorf("event.category = %v", cat)
	}
	if typ := ev["type"].([]string); !slices.Contains(typ, "group") || !slices.Contains(typ, "change") {
		t.Errorf("event.type = %v", typ)
	}
	user := doc["user"].(map[string]any)
	if user["name"] != "bob" {
		t.Errorf("user.name (actor) = %v", user["name"])
	}
	target := user["target"].(map[string]any)
	if target["name"] != "alice" || target["id"] != "1001" {
		t.Errorf("user.target = %v", target)
	}
	if target["group"].(map[string]any)["name"] != "sudo" || doc["group"].(map[string]any)["id"] != "27" {
		t.Errorf("group = %v / %v", target["group"], doc["group"])
	}
	if doc["source"].(map[string]any)["ip"] != "192.0.2.7" {
		t.Errorf("source.ip = %v", doc["source"])
	}
	if doc["@timestamp"] != "2026-11-25T17:37:08.456929Z" {
		t.Errorf("@timestamp = %v", doc["@timestamp"])
	}
	if _, err := json.Marshal(doc); err != nil {
		t.Fatal(err)
	}
}
