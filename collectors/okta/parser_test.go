package okta

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

var observed = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func parseFile(t *testing.T, path string) ([]collectors.Record, *collectors.ProblemCounter) {
	t.Helper()
	pc := &collectors.ProblemCounter{}
	p := NewParser(collectors.Settings{Type: Type, Problems: pc})
	p.m.now = func() time.Time { return observed }
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sink := &windowtest.Sink{}
	if err := p.Parse(context.Background(), f, filepath.Base(path), sink); err != nil {
		t.Fatal(err)
	}
	return sink.Records, pc
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			recs, _ := parseFile(t, path)
			windowtest.Golden(t, recs, strings.TrimSuffix(path, ".json")+".golden.ndjson", *update)
		})
	}
}

// TestSamples pins the mapping of each sample to what it must say.
func TestSamples(t *testing.T) {
	type want struct {
		action  event.Action
		actor   string
		user    string
		group   string
		privs   string
		outcome event.Outcome
	}
	tests := map[string][]want{
		"okta-user-account-privilege-grant.json": {{event.PrivilegeGrant, "jack@acme.io", "alice@acme.io", "", "Organization administrator|Application administrator (all)", event.OutcomeSuccess}},
		"okta-system-api-token-create.json":      {{event.CredentialCreate, "user@example.com", "user@example.com", "", "", event.OutcomeSuccess}},
		"okta-logevent-doc-example.json":         nil, // a login, and its published date is invalid
		"okta-provisioning-page.json": {
			{event.UserCreate, "admin@example.com", "new.hire@example.com", "", "", event.OutcomeSuccess},
			{event.GroupMemberAdd, "admin@example.com", "new.hire@example.com", "Admins", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "provisioner", "new.hire@example.com", "", "app:AWS Account Federation", event.OutcomeSuccess},
			{event.UserDisable, "admin@example.com", "ceo@example.com", "", "", event.OutcomeFailure},
			{event.PasswordReset, "admin@example.com", "new.hire@example.com", "", "", event.OutcomeSuccess},
			{event.PrivilegeRevoke, "admin@example.com", "new.hire@example.com", "", "Super administrator", event.OutcomeSuccess},
			{event.GroupMemberRemove, "system@okta.com", "new.hire@example.com", "Admins", "", event.OutcomeSuccess},
		},
	}
	for file, wants := range tests {
		recs, _ := parseFile(t, filepath.Join("testdata", file))
		if len(recs) != len(wants) {
			t.Errorf("%s: %d events, want %d", file, len(recs), len(wants))
			continue
		}
		for i, w := range wants {
			ev := recs[i].Event
			var user, group string
			if ev.Target.User != nil {
				user = ev.Target.User.Name
			}
			if ev.Target.Group != nil {
				group = ev.Target.Group.Name
			}
			got := want{ev.Action, ev.Actor.Name, user, group, strings.Join(ev.Target.Privileges, "|"), ev.Outcome}
			if got != w {
				t.Errorf("%s #%d:\n got %+v\nwant %+v", file, i, got, w)
			}
			if ev.Source.EventID == "" || ev.ID != event.NewID(Type, "", ev.Source.EventID) {
				t.Errorf("%s #%d: id %q / event id %q", file, i, ev.ID, ev.Source.EventID)
			}
		}
	}
	recs, _ := parseFile(t, "testdata/okta-user-account-privilege-grant.json")
	if ev := recs[0].Event; ev.Origin.IP != "136.24.229.58" || !strings.HasPrefix(ev.Origin.UserAgent, "Mozilla/5.0") || ev.Actor.Type != event.ActorHuman {
		t.Errorf("origin/actor: %+v %+v", ev.Origin, ev.Actor)
	}
}

func TestBadRecordsAreProblems(t *testing.T) {
	in := `[{"uuid":"x","eventType":"user.lifecycle.create","published":"yesterday"},
	{"eventType":"group.user_membership.add","published":"2024-01-01T00:00:00Z"},
	{"uuid":"y"}, 7,
	{"uuid":"z","eventType":"user.lifecycle.create","published":"2024-01-01T00:00:00Z","actor":{"type":"User","alternateId":"a@b.c"},"target":[{"type":"User","alternateId":"n@b.c"}]}]`
	pc := &collectors.ProblemCounter{}
	p := NewParser(collectors.Settings{Problems: pc})
	sink := &windowtest.Sink{}
	if err := p.Parse(context.Background(), strings.NewReader(in), "in", sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.Records) != 1 || pc.Count() != 4 {
		t.Fatalf("%d records, %d problems; want 1, 4", len(sink.Records), pc.Count())
	}
}
