package entra

import (
	"flag"
	"strings"
	"testing"

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
		"entra-directoryaudits-list-response.json": {Events: []want{{event.GroupMemberAdd, "bob@wingtiptoysonline.com", "bob@contoso.com", "Example.com", "", event.OutcomeSuccess}}},
		"azure-activitylog-administrative.json":    {}, // an NSG write, not access
		"entra-provisioning-page.json": {Events: []want{
			{event.UserCreate, "ada@contoso.com", "newhire@contoso.com", "", "", event.OutcomeSuccess},
			{event.UserDisable, "ada@contoso.com", "leaver@contoso.com", "", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "Provisioning App", "newhire@contoso.com", "", "Global Administrator", event.OutcomeSuccess},
			{event.PasswordReset, "helpdesk@contoso.com", "ceo@contoso.com", "", "", event.OutcomeFailure},
			{event.GroupMemberRemove, "ada@contoso.com", "leaver@contoso.com", "Finance Admins", "", event.OutcomeSuccess},
		}},
		"azure-activitylog-roleassignment.json": {Events: []want{
			{event.PrivilegeGrant, "ada@contoso.com", "u0000000-0000-4000-8000-000000000001", "",
				"azure-rbac:/subscriptions/00000000-1111-2222-3333-444444444444/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635 at /subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-prod",
				event.OutcomeSuccess},
			{event.PrivilegeRevoke, "bob@contoso.com", "", "",
				"azure-rbac:/subscriptions/00000000-1111-2222-3333-444444444444/providers/Microsoft.Authorization/roleAssignments/ra000000-0000-4000-8000-000000000009",
				event.OutcomeFailure},
		}},
	}
	windowtest.CheckSamples(t, tests, parseFile, func(t *testing.T, where string, ev event.Event) {
		if ev.Source.EventID == "" {
			t.Errorf("%s: no source event id", where)
		}
	})
	recs, _ := parseFile(t, "testdata/entra-provisioning-page.json")
	if ev := recs[0].Event; ev.Origin.IP != "198.51.100.20" || !strings.HasPrefix(ev.Origin.UserAgent, "Mozilla/5.0") {
		t.Errorf("origin %+v", ev.Origin)
	}
}
