package github

import (
	"flag"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

// parseFile parses a testdata file with the observed time fixed.
var parseFile = windowtest.Parser(Type, NewParser, func(p *Parser) { p.m.now = windowtest.Observed })

func TestGolden(t *testing.T) {
	windowtest.GoldenFiles(t, parseFile, *update, "testdata/*.json")
}

func TestSamples(t *testing.T) {
	type want windowtest.Summary
	tests := map[string]windowtest.Sample[want]{
		"github-org-audit-log-page.json": {Events: []want{
			{event.GroupMemberAdd, "octo-admin", "new-hire", "octo-org", "", event.OutcomeSuccess},
			{event.GroupMemberAdd, "octo-admin", "new-hire", "octo-org/platform", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "octo-admin", "new-hire", "", "org:octo-org:admin", event.OutcomeSuccess},
		}},
		"github-membership-events.json": {Events: []want{
			{event.GroupMemberRemove, "octo-admin", "leaver", "octo-org/platform", "", event.OutcomeSuccess},
			{event.GroupMemberRemove, "octo-admin", "leaver", "octo-org", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "octo-admin", "contractor", "", "repo:octo-org/secrets:write", event.OutcomeSuccess},
			{event.PrivilegeGrant, "octo-admin", "new-hire", "octo-org/platform", "team:octo-org/platform:maintainer", event.OutcomeSuccess},
			{event.PrivilegeRevoke, "octo-admin", "new-hire", "", "org:octo-org:admin", event.OutcomeSuccess},
			{event.CredentialCreate, "new-hire", "new-hire", "", "", event.OutcomeSuccess},
		}},
	}
	windowtest.CheckSamples(t, tests, parseFile, func(t *testing.T, where string, ev event.Event) {
		if ev.Source.EventID == "" || ev.ID != event.NewID(Type, "octo-org", ev.Source.EventID) {
			t.Errorf("%s: id %s", where, ev.Source.EventID)
		}
	})
	recs, _ := parseFile(t, "testdata/github-org-audit-log-page.json")
	if got := recs[0].Event.Time; !got.Equal(time.UnixMilli(1700000000000)) {
		t.Errorf("time %s", got)
	}
}
