package cloudtrail

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
	windowtest.GoldenFiles(t, parseFile, *update, "testdata/*.json", "testdata/*.json.gz")
}

func TestSamples(t *testing.T) {
	type want windowtest.Summary
	tests := map[string]windowtest.Sample[want]{
		"aws-cloudtrail-createuser.json":               {Events: []want{{event.UserCreate, "Alice", "Bob", "", "", event.OutcomeSuccess}}},
		"aws-cloudtrail-addusertogroup.json":           {Events: []want{{event.GroupMemberAdd, "Alice", "Bob", "admin", "", event.OutcomeSuccess}}},
		"aws-cloudtrail-createrole.json":               {Events: []want{{event.UserCreate, "Alice", "TestRole", "", "", event.OutcomeSuccess}}},
		"aws-cloudtrail-error-record.json":             {}, // UpdateTrail: not provisioning
		"aws-cloudtrail-lookupevents-response.json":    {Events: []want{{event.UserCreate, "Alice", "Bob", "", "", event.OutcomeSuccess}}},
		"aws-identitystore-scim-createuser.json":       {Problems: 1}, // the doc redacted eventTime to "xxxx"
		"aws-identitystore-scim-createuser-dated.json": {Events: []want{{event.UserCreate, "", "c4488478-a0e1-700e-3d75-96c6bb641596", "", "", event.OutcomeSuccess}}},
		"111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz": {Events: []want{
			{event.UserCreate, "Alice", "Bob", "", "", event.OutcomeSuccess},
			{event.GroupMemberAdd, "Alice", "Bob", "admin", "", event.OutcomeSuccess},
		}},
		"aws-provisioning-records.json": {Events: []want{
			{event.PrivilegeGrant, "Admin/ada", "bob", "", "arn:aws:iam::aws:policy/AdministratorAccess", event.OutcomeSuccess},
			{event.CredentialCreate, "ada", "bob", "", "", event.OutcomeSuccess},
			{event.PasswordReset, "ada", "bob", "", "", event.OutcomeSuccess},
			{event.PrivilegeGrant, "9067c0e4-d0e1-70a1-0000-000000000001", "9067c0e4-d0e1-70a1-0000-000000000002", "", "arn:aws:sso:::permissionSet/ssoins-1/ps-admin on AWS_ACCOUNT 210987654321", event.OutcomeSuccess},
			{event.GroupMemberAdd, "Provisioner/lambda", "9067c0e4-d0e1-70a1-0000-000000000002", "g-ops", "", event.OutcomeSuccess},
			{event.UserDisable, "", "9067c0e4-d0e1-70a1-0000-000000000003", "", "", event.OutcomeSuccess},
			{event.GroupMemberAdd, "mallory", "mallory", "admins", "", event.OutcomeFailure},
		}},
	}
	windowtest.CheckSamples(t, tests, parseFile, func(t *testing.T, where string, ev event.Event) {
		if strings.Contains(ev.Raw, "should-never-be-logged") {
			t.Errorf("%s: secret in raw", where)
		}
	})
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
