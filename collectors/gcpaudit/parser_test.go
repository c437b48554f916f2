package gcpaudit

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
	grant := want{event.PrivilegeGrant, "made-up-ci-account@project-id.iam.gserviceaccount.com", "project-id@cloudservices.gserviceaccount.com", "",
		"roles/resourcemanager.projectIamAdmin on projects/project-id", event.OutcomeSuccess}
	tests := map[string]struct {
		events   []want
		problems int64
	}{
		"gcp-audit-setiampolicy.json":               {[]want{grant}, 0},
		"gcp-entries-list-response.json":            {[]want{grant}, 0},
		"gcp-audit-createserviceaccount.json":       {nil, 1}, // the doc example has no timestamp
		"gcp-audit-createserviceaccount-dated.json": {[]want{{event.UserCreate, "example-user@example.com", "my-service-account@my-project.iam.gserviceaccount.com", "", "", event.OutcomeSuccess}}, 0},
		"gcp-provisioning-entries.json": {[]want{
			{event.PrivilegeRevoke, "ada@example.com", "", "analysts@example.com", "roles/bigquery.dataViewer on projects/p1/datasets/finance", event.OutcomeSuccess},
			{event.PrivilegeGrant, "ada@example.com", "bob@example.com", "", "roles/bigquery.dataOwner on projects/p1/datasets/finance", event.OutcomeSuccess},
			{event.CredentialCreate, "deployer@p1.iam.gserviceaccount.com", "ci@p1.iam.gserviceaccount.com", "", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "mallory@example.com", "", "", "iam-policy on organizations/42", event.OutcomeFailure},
			{event.UserDisable, "ada@example.com", "old@p1.iam.gserviceaccount.com", "", "", event.OutcomeSuccess},
		}, 0},
	}
	for file, tc := range tests {
		recs, problems := parseFile(t, filepath.Join("testdata", file))
		if problems != tc.problems || len(recs) != len(tc.events) {
			t.Errorf("%s: %d events, %d problems; want %d, %d", file, len(recs), problems, len(tc.events), tc.problems)
			continue
		}
		for i, w := range tc.events {
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
			if strings.Contains(ev.Raw, "SHOULD-NEVER-APPEAR") {
				t.Errorf("%s #%d: key material in raw", file, i)
			}
		}
	}
	recs, _ := parseFile(t, "testdata/gcp-audit-setiampolicy.json")
	ev := recs[0].Event
	if ev.Origin.IP != "192.168.0.1" || !strings.HasPrefix(ev.Origin.UserAgent, "google-cloud-sdk gcloud/501.0.0") ||
		ev.Origin.Instance != "projects/project-id" || ev.Source.EventID != "-30102re2sad8" || ev.Actor.Type != event.ActorService {
		t.Errorf("fields %+v %+v %+v", ev.Origin, ev.Source, ev.Actor)
	}
	recs, _ = parseFile(t, "testdata/gcp-provisioning-entries.json")
	if recs[0].Event.ID == recs[1].Event.ID {
		t.Error("two deltas of one entry share an id")
	}
	if recs[2].Event.Actor.OnBehalfOf != "ada@example.com" {
		t.Errorf("impersonation: %+v", recs[2].Event.Actor)
	}
}
