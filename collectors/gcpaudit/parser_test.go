package gcpaudit

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
	grant := want{event.PrivilegeGrant, "made-up-ci-account@project-id.iam.gserviceaccount.com", "project-id@cloudservices.gserviceaccount.com", "",
		"roles/resourcemanager.projectIamAdmin on projects/project-id", event.OutcomeSuccess}
	tests := map[string]windowtest.Sample[want]{
		"gcp-audit-setiampolicy.json":               {Events: []want{grant}},
		"gcp-entries-list-response.json":            {Events: []want{grant}},
		"gcp-audit-createserviceaccount.json":       {Problems: 1}, // the doc example has no timestamp
		"gcp-audit-createserviceaccount-dated.json": {Events: []want{{event.UserCreate, "example-user@example.com", "my-service-account@my-project.iam.gserviceaccount.com", "", "", event.OutcomeSuccess}}},
		"gcp-provisioning-entries.json": {Events: []want{
			{event.PrivilegeRevoke, "ada@example.com", "", "analysts@example.com", "roles/bigquery.dataViewer on projects/p1/datasets/finance", event.OutcomeSuccess},
			{event.PrivilegeGrant, "ada@example.com", "bob@example.com", "", "roles/bigquery.dataOwner on projects/p1/datasets/finance", event.OutcomeSuccess},
			{event.CredentialCreate, "deployer@p1.iam.gserviceaccount.com", "ci@p1.iam.gserviceaccount.com", "", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "mallory@example.com", "", "", "iam-policy on organizations/42", event.OutcomeFailure},
			{event.UserDisable, "ada@example.com", "old@p1.iam.gserviceaccount.com", "", "", event.OutcomeSuccess},
		}},
	}
	windowtest.CheckSamples(t, tests, parseFile, func(t *testing.T, where string, ev event.Event) {
		if strings.Contains(ev.Raw, "SHOULD-NEVER-APPEAR") {
			t.Errorf("%s: key material in raw", where)
		}
	})
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
