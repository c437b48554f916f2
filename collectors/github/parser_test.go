package github

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
		"github-org-audit-log-page.json": {
			{event.GroupMemberAdd, "octo-admin", "new-hire", "octo-org", ""},
			{event.GroupMemberAdd, "octo-admin", "new-hire", "octo-org/platform", ""},
			{event.PrivilegeGrant, "octo-admin", "new-hire", "", "org:octo-org:admin"},
		},
		"github-membership-events.json": {
			{event.GroupMemberRemove, "octo-admin", "leaver", "octo-org/platform", ""},
			{event.GroupMemberRemove, "octo-admin", "leaver", "octo-org", ""},
			{event.PrivilegeGrant, "octo-admin", "contractor", "", "repo:octo-org/secrets:write"},
			{event.PrivilegeGrant, "octo-admin", "new-hire", "octo-org/platform", "team:octo-org/platform:maintainer"},
			{event.PrivilegeRevoke, "octo-admin", "new-hire", "", "org:octo-org:admin"},
			{event.CredentialCreate, "new-hire", "new-hire", "", ""},
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
			if ev.Outcome != event.OutcomeSuccess || ev.Source.EventID == "" || ev.ID != event.NewID(Type, "octo-org", ev.Source.EventID) {
				t.Errorf("%s #%d: outcome %s id %s", file, i, ev.Outcome, ev.Source.EventID)
			}
		}
	}
	recs, _ := parseFile(t, "testdata/github-org-audit-log-page.json")
	if got := recs[0].Event.Time; !got.Equal(time.UnixMilli(1700000000000)) {
		t.Errorf("time %s", got)
	}
}
