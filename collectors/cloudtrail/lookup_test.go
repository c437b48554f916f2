package cloudtrail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// awsTestEnv gives the SDK's default chain static credentials and keeps
// it off the instance metadata service and the user's files.
func awsTestEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTESTEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CA_BUNDLE", "") // the test client has its own roots
}

// fakeCloudTrail speaks LookupEvents on the AWS JSON 1.1 wire: POST /,
// X-Amz-Target, epoch-second times, newest first, NextToken bound to the
// query, and HTTP 400 ThrottlingException.
type fakeCloudTrail struct {
	t     *testing.T
	clock *windowtest.Clock
	tl    map[string]*windowtest.Timeline // by region
	srv   *httptest.Server

	mu        sync.Mutex
	n         int
	throttled int
	throttle  func(n int) bool
	unsigned  int
}

func newFakeCloudTrail(t *testing.T, clock *windowtest.Clock) *fakeCloudTrail {
	f := &fakeCloudTrail{t: t, clock: clock, tl: map[string]*windowtest.Timeline{"us-east-1": {}, "eu-west-1": {}}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCloudTrail) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	fail := func(code int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"__type":%q,"message":%q}`, typ, msg)
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDTESTEXAMPLE/") {
		f.unsigned++
		fail(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	// Credential=AKID/DATE/REGION/cloudtrail/aws4_request
	region := strings.Split(strings.SplitN(auth, "Credential=", 2)[1], "/")[2]
	if r.Method != "POST" || r.URL.Path != "/" || r.Header.Get("X-Amz-Target") != "CloudTrail_20131101.LookupEvents" {
		fail(400, "UnknownOperationException", "")
		return
	}
	if f.throttle != nil && f.throttle(f.n) {
		f.throttled++
		fail(400, "ThrottlingException", "Rate exceeded")
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct {
		StartTime, EndTime float64
		LookupAttributes   []struct{ AttributeKey, AttributeValue string }
		MaxResults         int
		NextToken          string
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fail(400, "SerializationException", err.Error())
		return
	}
	if len(in.LookupAttributes) != 1 || in.MaxResults < 1 || in.MaxResults > 50 {
		fail(400, "InvalidLookupAttributesException", "bad lookup")
		return
	}
	la := in.LookupAttributes[0]
	keep := func(it windowtest.Item) bool {
		p := it.Payload.(map[string]any)
		switch la.AttributeKey {
		case "ReadOnly":
			return fmt.Sprint(p["readOnly"]) == la.AttributeValue
		case "EventSource":
			return p["eventSource"] == la.AttributeValue
		}
		return false
	}
	// The token is bound to the query: "offset|digest of the parameters".
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%v|%v|%v", region, in.StartTime, in.EndTime, in.LookupAttributes))
	query := hex.EncodeToString(sum[:8])
	off := 0
	if in.NextToken != "" {
		o, q, ok := strings.Cut(in.NextToken, "|")
		if !ok || q != query {
			fail(400, "InvalidNextTokenException", "A token you provided is not valid.")
			return
		}
		off, _ = strconv.Atoi(o)
	}
	sec := func(v float64) time.Time { s, frac := math.Modf(v); return time.Unix(int64(s), int64(frac*1e9)).UTC() }
	from, to := sec(in.StartTime), sec(in.EndTime)
	var items []windowtest.Item
	for _, it := range f.tl[region].Query(from, to.Add(time.Nanosecond), f.clock.Now(), true) {
		if keep(it) {
			items = append(items, it)
		}
	}
	end := min(off+in.MaxResults, len(items))
	var events []map[string]any
	for _, it := range items[off:end] {
		rec, _ := json.Marshal(it.Payload)
		events = append(events, map[string]any{
			"EventId": it.ID, "EventName": it.Payload.(map[string]any)["eventName"], "ReadOnly": "false",
			"EventTime": float64(it.Time.Unix()), "EventSource": it.Payload.(map[string]any)["eventSource"],
			"CloudTrailEvent": string(rec),
		})
	}
	out := map[string]any{"Events": events}
	if end < len(items) {
		out["NextToken"] = strconv.Itoa(end) + "|" + query
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func trailRecord(i int, region string, at, visible time.Time) windowtest.Item {
	id := fmt.Sprintf("evt-%s-%05d", region, i)
	names := []string{"CreateUser", "AddUserToGroup", "AttachRolePolicy", "CreateAccessKey", "PutBucketPolicy"}
	name := names[i%len(names)]
	src := "iam.amazonaws.com"
	if name == "PutBucketPolicy" {
		src = "s3.amazonaws.com"
	}
	return windowtest.Item{ID: id, Time: at, VisibleAt: visible, Payload: map[string]any{
		"eventVersion": "1.09", "eventTime": at.Format(time.RFC3339), "eventSource": src, "eventName": name,
		"awsRegion": region, "sourceIPAddress": "198.51.100.9", "userAgent": "aws-cli/2",
		"userIdentity":      map[string]any{"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/ada", "accountId": "123456789012", "userName": "ada"},
		"requestParameters": map[string]any{"userName": "u" + id, "groupName": "ops", "roleName": "r" + id, "policyArn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
		"eventID":           id, "recipientAccountId": "123456789012", "readOnly": false,
	}}
}

func TestLookupEvents(t *testing.T) {
	awsTestEnv(t)
	clock := windowtest.NewClock(t0)
	f := newFakeCloudTrail(t, clock)
	// A storm: requests 5-14 are all throttled, then every 7th.
	f.throttle = func(n int) bool { return (n >= 5 && n < 15) || n%7 == 0 }
	var want []string
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		for i := range 130 {
			at := t0.Add(time.Duration(i) * 2 * time.Minute)
			it := trailRecord(i, region, at, at.Add(4*time.Minute))
			f.tl[region].Add(it)
			if i%5 != 4 {
				want = append(want, it.ID)
			}
		}
	}
	// Delivered 40 minutes late: past settle and overlap; the re-scan
	// must find it.
	late := trailRecord(9000, "us-east-1", t0.Add(20*time.Minute), t0.Add(95*time.Minute))
	f.tl["us-east-1"].Add(late)
	want = append(want, late.ID)

	src := fmt.Sprintf(`
regions = ["us-east-1", "eu-west-1"]
endpoint_url = %q
poll_interval = "5m"
rescan_lookback = "6h"
backfill_since = "2026-06-01T00:00:00Z"
`, f.srv.URL)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	dir := t.TempDir()
	sink := &windowtest.Sink{CrashAfter: 37}
	var pc collectors.ProblemCounter
	crashes := windowtest.Restarts(t, clock, sink, windowtest.At(t0.Add(8*time.Hour)), func() (collectors.Collector, error) {
		return New(collectors.Settings{Type: Type, Name: "prod", StateDir: dir, Problems: &pc}, cfg,
			Options{Clock: clock, HTTPClient: f.srv.Client(), Backoff: retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })})
	}, func(n int) {
		if n == 1 {
			sink.CrashAfter = len(sink.Records) + 101
		}
	})
	if crashes != 2 {
		t.Fatalf("%d crashes", crashes)
	}
	if err := windowtest.ExactlyOnce(sink.SourceIDs(), want); err != nil {
		t.Fatal(err)
	}
	if f.unsigned != 0 || pc.Count() != 0 {
		t.Fatalf("unsigned %d, problems %d", f.unsigned, pc.Count())
	}
	if f.throttled < 10 {
		t.Fatalf("only %d throttled replies", f.throttled)
	}
}

// TestLookupByEventSource queries per event source; events of other
// sources are never fetched.
func TestLookupByEventSource(t *testing.T) {
	awsTestEnv(t)
	clock := windowtest.NewClock(t0)
	f := newFakeCloudTrail(t, clock)
	var want []string
	for i := range 40 {
		at := t0.Add(time.Duration(i) * 3 * time.Minute)
		it := trailRecord(i, "us-east-1", at, at)
		f.tl["us-east-1"].Add(it)
		if i%5 != 4 {
			want = append(want, it.ID)
		}
	}
	src := fmt.Sprintf("event_sources = [\"iam.amazonaws.com\", \"sso.amazonaws.com\"]\nendpoint_url = %q\nbackfill_since = \"2026-06-01T00:00:00Z\"\n", f.srv.URL)
	file, _ := hclsyntax.ParseConfig([]byte(src), "agent.hcl", hcl.InitialPos)
	cfg, diags := DecodeConfig(file.Body, hclconfig.EvalContext(".", nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	sink := &windowtest.Sink{}
	c, err := New(collectors.Settings{Type: Type, Name: "prod", StateDir: t.TempDir()}, cfg, Options{Clock: clock, HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	clock.StopAt(t0.Add(4*time.Hour), cancel)
	c.Run(ctx, nil, sink)
	if err := windowtest.ExactlyOnce(sink.SourceIDs(), want); err != nil {
		t.Fatal(err)
	}
}
