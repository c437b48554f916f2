package cloudtrail

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

func testFiles() []string {
	a, _ := filepath.Glob("testdata/*.json")
	b, _ := filepath.Glob("testdata/*.json.gz")
	return append(a, b...)
}

func TestGolden(t *testing.T) {
	for _, path := range testFiles() {
		t.Run(filepath.Base(path), func(t *testing.T) {
			recs, _ := parseFile(t, path)
			golden := strings.TrimSuffix(strings.TrimSuffix(path, ".gz"), ".json") + ".golden.ndjson"
			windowtest.Golden(t, recs, golden, *update)
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
	tests := map[string]struct {
		events   []want
		problems int64
	}{
		"aws-cloudtrail-createuser.json":               {[]want{{event.UserCreate, "Alice", "Bob", "", "", event.OutcomeSuccess}}, 0},
		"aws-cloudtrail-addusertogroup.json":           {[]want{{event.GroupMemberAdd, "Alice", "Bob", "admin", "", event.OutcomeSuccess}}, 0},
		"aws-cloudtrail-createrole.json":               {[]want{{event.UserCreate, "Alice", "TestRole", "", "", event.OutcomeSuccess}}, 0},
		"aws-cloudtrail-error-record.json":             {nil, 0}, // UpdateTrail: not provisioning
		"aws-cloudtrail-lookupevents-response.json":    {[]want{{event.UserCreate, "Alice", "Bob", "", "", event.OutcomeSuccess}}, 0},
		"aws-identitystore-scim-createuser.json":       {nil, 1}, // the doc redacted eventTime to "xxxx"
		"aws-identitystore-scim-createuser-dated.json": {[]want{{event.UserCreate, "", "c4488478-a0e1-700e-3d75-96c6bb641596", "", "", event.OutcomeSuccess}}, 0},
		"111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz": {[]want{
			{event.UserCreate, "Alice", "Bob", "", "", event.OutcomeSuccess},
			{event.GroupMemberAdd, "Alice", "Bob", "admin", "", event.OutcomeSuccess},
		}, 0},
		"aws-provisioning-records.json": {[]want{
			{event.PrivilegeGrant, "Admin/ada", "bob", "", "arn:aws:iam::aws:policy/AdministratorAccess", event.OutcomeSuccess},
			{event.CredentialCreate, "ada", "bob", "", "", event.OutcomeSuccess},
			{event.PasswordReset, "ada", "bob", "", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "9067c0e4-d0e1-70a1-0000-000000000001", "9067c0e4-d0e1-70a1-0000-000000000002", "", "arn:aws:sso:::permissionSet/ssoins-1/ps-admin on AWS_ACCOUNT 210987654321", event.OutcomeSuccess},
			{event.GroupMemberAdd, "Provisioner/lambda", "9067c0e4-d0e1-70a1-0000-000000000002", "g-ops", "", event.OutcomeSuccess},
			{event.UserDisable, "", "9067c0e4-d0e1-70a1-0000-000000000003", "", "", event.OutcomeSuccess},
			{event.GroupMemberAdd, "mallory", "mallory", "admins", "", event.OutcomeFailure},
		}, 0},
	}
	for file, tc := range tests {
		recs, problems := parseFile(t, filepath.Join("testdata", file))
		if problems != tc.problems {
			t.Errorf("%s: %d problems, want %d", file, problems, tc.problems)
		}
		if len(recs) != len(tc.events) {
			t.Errorf("%s: %d events, want %d", file, len(recs), len(tc.events))
			continue
		}
		for i, w := range tc.events {
			ev := recs[i].Event
			var user, group string
			if ev.Target.User != nil {
				user = firstOf(ev.Target.User.Name, ev.Target.User.ID)
			}
			if ev.Target.Group != nil {
				group = firstOf(ev.Target.Group.Name, ev.Target.Group.ID)
			}
			got := want{ev.Action, ev.Actor.Name, user, group, strings.Join(ev.Target.Privileges, "|"), ev.Outcome}
			if got != w {
				t.Errorf("%s #%d:\n got %+v\nwant %+v", file, i, got, w)
			}
			if strings.Contains(ev.Raw, "should-never-be-logged") {
				t.Errorf("%s #%d: secret in raw", file, i)
			}
		}
	}
	recs, _ := parseFile(t, "testdata/aws-provisioning-records.json")
	ev := recs[0].Event
	if ev.Source.EventID != "e0000000-0000-4000-8000-000000000001" || ev.ID != event.NewID(Type, "123456789012", ev.Source.EventID) ||
		ev.Origin.IP != "198.51.100.5" || ev.Origin.UserAgent != "aws-cli/2.15.0" || ev.Actor.Auth != "mfa" || ev.Origin.Instance != "123456789012" {
		t.Errorf("fields: %+v", ev)
	}
	if recs[4].Event.Origin.Host != "lambda.amazonaws.com" || recs[4].Event.Actor.Type != event.ActorService {
		t.Errorf("service caller: %+v %+v", recs[4].Event.Origin, recs[4].Event.Actor)
	}
}
