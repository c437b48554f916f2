package entra

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

func parseFile(t *testing.T, path string) ([]collectors.Record, int64) {
	t.Helper()
	pc := &collectors.ProblemCounter{}
	p := NewParser(collectors.Settings{Type: Type, Problems: pc})
	p.m.now = func() time.Time { return time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC) }
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sink := &windowtest.Sink{}
	if err := p.Parse(context.Background(), f, filepath.Base(path), sink); err != nil {
		t.Fatal(err)
	}
	return sink.Records, pc.Count()
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

func TestSamples(t *testing.T) {
	type want struct {
		action      event.Action
		actor       string
		user, group string
		privs       string
		outcome     event.Outcome
	}
	tests := map[string][]want{
		"entra-directoryaudits-list-response.json": {{event.GroupMemberAdd, "bob@wingtiptoysonline.com", "bob@contoso.com", "Example.com", "", event.OutcomeSuccess}},
		"azure-activitylog-administrative.json":    nil, // an NSG write, not access
		"entra-provisioning-page.json": {
			{event.UserCreate, "ada@contoso.com", "newhire@contoso.com", "", "", event.OutcomeSuccess},
			{event.UserDisable, "ada@contoso.com", "leaver@contoso.com", "", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "Provisioning App", "newhire@contoso.com", "", "Global Administrator", event.OutcomeSuccess},
			{event.PasswordReset, "helpdesk@contoso.com", "ceo@contoso.com", "", "", event.OutcomeFailure},
			{event.GroupMemberRemove, "ada@contoso.com", "leaver@contoso.com", "Finance Admins", "", event.OutcomeSuccess},
		},
		"azure-activitylog-roleassignment.json": {
			{event.PrivilegeGrant, "ada@contoso.com", "u0000000-0000-4000-8000-000000000001", "",
				"azure-rbac:/subscriptions/00000000-1111-2222-3333-444444444444/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635 at /subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-prod",
				event.OutcomeSuccess},
			{event.PrivilegeRevoke, "bob@contoso.com", "", "",
				"azure-rbac:/subscriptions/00000000-1111-2222-3333-444444444444/providers/Microsoft.Authorization/roleAssignments/ra000000-0000-4000-8000-000000000009",
				event.OutcomeFailure},
		},
	}
	for file, wants := range tests {
		recs, problems := parseFile(t, filepath.Join("testdata", file))
		if problems != 0 {
			t.Errorf("%s: %d problems", file, problems)
		}
		if len(recs) != len(wants) {
			t.Errorf("%s: %d events, want %d", file, len(recs), len(wants))
			continue
		}
		for i, w := range wants {
			ev := recs[i].Event
			var user, group string
			if ev.Target.User != nil {
				user = firstOf(ev.Target.User.Name, ev.Target.User.ID)
			}
			if ev.Target.Group != nil {
				group = ev.Target.Group.Name
			}
			got := want{ev.Action, ev.Actor.Name, user, group, strings.Join(ev.Target.Privileges, "|"), ev.Outcome}
			if got != w {
				t.Errorf("%s #%d:\n got %+v\nwant %+v", file, i, got, w)
			}
			if ev.Source.EventID == "" {
				t.Errorf("%s #%d: no source event id", file, i)
			}
		}
	}
	recs, _ := parseFile(t, "testdata/entra-provisioning-page.json")
	if ev := recs[0].Event; ev.Origin.IP != "198.51.100.20" || !strings.HasPrefix(ev.Origin.UserAgent, "Mozilla/5.0") {
		t.Errorf("origin %+v", ev.Origin)
	}
}
