package gcpaudit

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
)

var t0 = time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)

var filterRE = regexp.MustCompile(`timestamp>="([^"]+)" AND timestamp<"([^"]+)"`)

// fakeGoogle speaks the OAuth2 JWT-bearer token endpoint (checking the
// assertion's RS256 signature with the service account's public key) and
// POST /v2/entries:list (filter with a timestamp range, orderBy
// "timestamp asc", pageToken bound to the query), answering 429
// RESOURCE_EXHAUSTED without Retry-After as Logging does.
type fakeGoogle struct {
	t     *testing.T
	clock *windowtest.Clock
	tl    *windowtest.Timeline
	pub   *rsa.PublicKey
	srv   *httptest.Server

	mu       sync.Mutex
	n        int
	tokens   int
	bad      int
	throttle int
}

func (f *fakeGoogle) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/token" {
		r.ParseForm()
		if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || !f.verify(r.PostForm.Get("assertion")) {
			f.bad++
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		f.tokens++
		fmt.Fprint(w, `{"access_token":"ya29.test","token_type":"Bearer","expires_in":3600}`)
		return
	}
	if r.URL.Path != "/v2/entries:list" || r.Method != "POST" || r.Header.Get("Authorization") != "Bearer ya29.test" {
		f.bad++
		w.WriteHeader(401)
		return
	}
	f.n++
	if f.throttle > 0 && f.n%f.throttle == 0 {
		w.WriteHeader(429)
		fmt.Fprint(w, `{"error":{"code":429,"message":"Quota exceeded for quota metric 'Read requests'","status":"RESOURCE_EXHAUSTED"}}`)
		return
	}
	var in struct {
		ResourceNames []string
		Filter        string
		OrderBy       string
		PageSize      int
		PageToken     string
	}
	b, _ := io.ReadAll(r.Body)
	json.Unmarshal(b, &in)
	m := filterRE.FindStringSubmatch(in.Filter)
	if m == nil || in.OrderBy != "timestamp asc" || len(in.ResourceNames) != 2 || !strings.Contains(in.Filter, `log_id("cloudaudit.googleapis.com/activity")`) {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":{"code":400,"status":"INVALID_ARGUMENT","message":%q}}`, in.Filter)
		return
	}
	from, _ := time.Parse(time.RFC3339Nano, m[1])
	to, _ := time.Parse(time.RFC3339Nano, m[2])
	items := f.tl.Query(from, to, f.clock.Now(), false)
	off := 0
	if in.PageToken != "" {
		o, q, _ := strings.Cut(in.PageToken, "|")
		if q != m[1]+m[2] {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"code":400,"status":"INVALID_ARGUMENT","message":"page token"}}`)
			return
		}
		off, _ = strconv.Atoi(o)
	}
	end := min(off+min(in.PageSize, 4), len(items))
	var entries []any
	for _, it := range items[off:end] {
		entries = append(entries, it.Payload)
	}
	out := map[string]any{"entries": entries}
	if end < len(items) {
		out["nextPageToken"] = strconv.Itoa(end) + "|" + m[1] + m[2]
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeGoogle) verify(jwt string) bool {
	var c struct {
		Iss, Scope, Aud string
	}
	return windowtest.VerifyJWT(jwt, f.pub, &c) &&
		c.Iss == "reader@p1.iam.gserviceaccount.com" && c.Scope == Scope && c.Aud == f.srv.URL+"/token"
}

func entryItem(i int, at, visible time.Time) windowtest.Item {
	id := fmt.Sprintf("ins-%05d", i)
	payload := map[string]any{
		"insertId": id, "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity", "timestamp": at.Format(time.RFC3339Nano),
		"resource": map[string]any{"type": "project"},
		"protoPayload": map[string]any{"serviceName": "cloudresourcemanager.googleapis.com", "methodName": "SetIamPolicy", "resourceName": "projects/p1",
			"authenticationInfo": map[string]any{"principalEmail": "ada@example.com"}, "status": map[string]any{},
			"serviceData": map[string]any{"policyDelta": map[string]any{"bindingDeltas": []any{
				map[string]any{"action": "ADD", "role": "roles/viewer", "member": "user:u" + id + "@example.com"},
				map[string]any{"action": "REMOVE", "role": "roles/editor", "member": "user:u" + id + "@example.com"},
			}}}},
	}
	return windowtest.Item{ID: id, Time: at, VisibleAt: visible, Payload: payload}
}

func TestCollector(t *testing.T) {
	clock := windowtest.NewClock(t0)
	f := &fakeGoogle{t: t, clock: clock, tl: &windowtest.Timeline{}, throttle: 6}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	defer f.srv.Close()
	// The file names Google's token URI; token_url points the test at the fake.
	saFile, pub := windowtest.ServiceAccount(t, "reader@p1.iam.gserviceaccount.com", "https://oauth2.googleapis.com/token")
	f.pub = pub
	var want []string
	add := func(it windowtest.Item) {
		f.tl.Add(it)
		want = append(want, it.ID+"#0", it.ID+"#1")
	}
	for i := range 50 {
		at := t0.Add(time.Duration(i) * 5 * time.Minute)
		add(entryItem(i, at, at.Add(2*time.Minute)))
	}
	add(entryItem(7000, t0.Add(15*time.Minute), t0.Add(3*time.Hour)))

	src := fmt.Sprintf(`
resource_names = ["organizations/42", "projects/p1"]
credentials_file = %q
token_url = "%s/token"
endpoint_url = %q
poll_interval = "5m"
rescan_lookback = "8h"
backfill_since = "2026-08-01T00:00:00Z"
`, saFile, f.srv.URL, f.srv.URL)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	dir := t.TempDir()
	sink := &windowtest.Sink{CrashAfter: 21} // between the two deltas of an entry
	var pc collectors.ProblemCounter
	crashes := windowtest.Restarts(t, clock, sink, windowtest.At(t0.Add(9*time.Hour)), func() (*Collector, error) {
		return New(collectors.Settings{Type: Type, Name: "org", StateDir: dir, Problems: &pc}, cfg, Options{Clock: clock, HTTPClient: f.srv.Client()})
	}, nil)
	if crashes != 1 || f.bad != 0 || pc.Count() != 0 || f.tokens == 0 {
		t.Fatalf("crashes %d, bad %d, problems %d, tokens %d", crashes, f.bad, pc.Count(), f.tokens)
	}
	var got []string
	for _, r := range sink.Records {
		suffix := "#0"
		if r.Event.Action == "privilege.revoke" {
			suffix = "#1"
		}
		got = append(got, r.Event.Source.EventID+suffix)
	}
	if err := windowtest.ExactlyOnce(got, want); err != nil {
		t.Fatal(err)
	}
}
