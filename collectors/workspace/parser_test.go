package workspace

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
	}
	tests := map[string][]want{
		"gworkspace-reports-activities-response.json": {
			{event.PrivilegeGrant, "admin@example.com", "newhire@example.com", "", "_GROUPS_ADMIN_ROLE"},
			{event.GroupMemberAdd, "admin@example.com", "newhire@example.com", "eng@example.com", ""},
			{event.UserCreate, "admin@example.com", "newhire@example.com", "", ""},
		},
		"gworkspace-admin-lifecycle.json": {
			{event.UserDisable, "admin@example.com", "leaver@example.com", "", ""},
			{event.GroupMemberRemove, "admin@example.com", "leaver@example.com", "finance@example.com", ""},
			{event.PrivilegeGrant, "admin@example.com", "it-lead@example.com", "", "super admin"},
			{event.MFADisable, "SYSTEM", "it-lead@example.com", "", ""},
			{event.UserRename, "admin@example.com", "old.name@example.com", "", ""},
		},
	}
	for file, wants := range tests {
		recs, problems := parseFile(t, filepath.Join("testdata", file))
		if problems != 0 || len(recs) != len(wants) {
			t.Errorf("%s: %d events, %d problems; want %d, 0", file, len(recs), problems, len(wants))
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
			got := want{ev.Action, ev.Actor.Name, user, group, strings.Join(ev.Target.Privileges, "|")}
			if got != w {
				t.Errorf("%s #%d:\n got %+v\nwant %+v", file, i, got, w)
			}
			if ev.Outcome != event.OutcomeSuccess || ev.Source.EventID == "" || ev.Origin.Instance != "C01abcde" {
				t.Errorf("%s #%d: %s %+v %+v", file, i, ev.Outcome, ev.Source, ev.Origin)
			}
		}
	}
	recs, _ := parseFile(t, "testdata/gworkspace-admin-lifecycle.json")
	if recs[0].Event.ID == recs[1].Event.ID || recs[0].Event.Source.EventID != recs[1].Event.Source.EventID {
		t.Error("two events of one activity: ids must differ, the activity id must not")
	}
	if recs[0].Event.Origin.IP != "203.0.113.10" {
		t.Errorf("ip %q", recs[0].Event.Origin.IP)
	}
}
