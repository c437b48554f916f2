package workspace

import (
	"flag"
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
		"gworkspace-reports-activities-response.json": {Events: []want{
			{event.PrivilegeGrant, "admin@example.com", "newhire@example.com", "", "_GROUPS_ADMIN_ROLE", event.OutcomeSuccess},
			{event.GroupMemberAdd, "admin@example.com", "newhire@example.com", "eng@example.com", "", event.OutcomeSuccess},
			{event.UserCreate, "admin@example.com", "newhire@example.com", "", "", event.OutcomeSuccess},
		}},
		"gworkspace-admin-lifecycle.json": {Events: []want{
			{event.UserDisable, "admin@example.com", "leaver@example.com", "", "", event.OutcomeSuccess},
			{event.GroupMemberRemove, "admin@example.com", "leaver@example.com", "finance@example.com", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "admin@example.com", "it-lead@example.com", "", "super admin", event.OutcomeSuccess},
			{event.MFADisable, "SYSTEM", "it-lead@example.com", "", "", event.OutcomeSuccess},
			{event.UserRename, "admin@example.com", "old.name@example.com", "", "", event.OutcomeSuccess},
		}},
	}
	windowtest.CheckSamples(t, tests, parseFile, func(t *testing.T, where string, ev event.Event) {
		if ev.Source.EventID == "" || ev.Origin.Instance != "C01abcde" {
			t.Errorf("%s: %+v %+v", where, ev.Source, ev.Origin)
		}
	})
	recs, _ := parseFile(t, "testdata/gworkspace-admin-lifecycle.json")
	if recs[0].Event.ID == recs[1].Event.ID || recs[0].Event.Source.EventID != recs[1].Event.Source.EventID {
		t.Error("two events of one activity: ids must differ, the activity id must not")
	}
	if recs[0].Event.Origin.IP != "203.0.113.10" {
		t.Errorf("ip %q", recs[0].Event.Origin.IP)
	}
}
