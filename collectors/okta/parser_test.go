package okta

import (
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

// parseFile parses a testdata file with the observed time fixed.
var parseFile = windowtest.Parser(Type, NewParser, func(p *Parser) { p.m.now = windowtest.Observed })

func TestGolden(t *testing.T) {
	windowtest.GoldenFiles(t, parseFile, *update, "testdata/*.json")
}

// TestSamples pins the mapping of each sample to what it must say.
func TestSamples(t *testing.T) {
	type want windowtest.Summary
	tests := map[string]windowtest.Sample[want]{
		"okta-user-account-privilege-grant.json": {Events: []want{{event.PrivilegeGrant, "jack@acme.io", "alice@acme.io", "", "Organization administrator|Application administrator (all)", event.OutcomeSuccess}}},
		"okta-system-api-token-create.json":      {Events: []want{{event.CredentialCreate, "user@example.com", "user@example.com", "", "", event.OutcomeSuccess}}},
		"okta-logevent-doc-example.json":         {}, // a login, and its published date is invalid
		"okta-provisioning-page.json": {Events: []want{
			{event.UserCreate, "admin@example.com", "new.hire@example.com", "", "", event.OutcomeSuccess},
			{event.GroupMemberAdd, "admin@example.com", "new.hire@example.com", "Admins", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "provisioner", "new.hire@example.com", "", "app:AWS Account Federation", event.OutcomeSuccess},
			{event.UserDisable, "admin@example.com", "ceo@example.com", "", "", event.OutcomeFailure},
			{event.PasswordReset, "admin@example.com", "new.hire@example.com", "", "", event.OutcomeSuccess},
			{event.PrivilegeRevoke, "admin@example.com", "new.hire@example.com", "", "Super administrator", event.OutcomeSuccess},
			{event.GroupMemberRemove, "system@okta.com", "new.hire@example.com", "Admins", "", event.OutcomeSuccess},
		}},
	}
	windowtest.CheckSamples(t, tests, parseFile, func(t *testing.T, where string, ev event.Event) {
		if ev.Source.EventID == "" || ev.ID != event.NewID(Type, "", ev.Source.EventID) {
			t.Errorf("%s: id %q / event id %q", where, ev.ID, ev.Source.EventID)
		}
	})
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
