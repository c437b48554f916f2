package okta

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

const testToken = "00-test-ssws-token"

// fakeOkta speaks GET /api/v1/logs as documented: SSWS auth, bounded
// since/until queries in ascending order, opaque system-generated next
// links carrying `after`, X-Rate-Limit-* headers, 429 with E0000047.
type fakeOkta struct {
	t     *testing.T
	tl    *windowtest.Timeline
	clock *windowtest.Clock
	srv   *httptest.Server

	mu       sync.Mutex
	requests int
	throttle int // answer every Nth request with 429
	badAuth  int
	pub      *rsa.PublicKey // set: the OAuth service app's key
	tokens   int
}

// serveToken is the org authorization server's token endpoint for a
// service app using private_key_jwt.
func (f *fakeOkta) serveToken(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	fail := func(why string) {
		f.badAuth++
		w.WriteHeader(401)
		fmt.Fprintf(w, `{"error":"invalid_client","error_description":%q}`, why)
	}
	if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "okta.logs.read" ||
		r.PostForm.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		fail("bad grant")
		return
	}
	var c struct {
		Iss, Sub, Aud string
		Exp           int64
	}
	if !windowtest.VerifyJWT(r.PostForm.Get("client_assertion"), f.pub, &c) {
		fail("assertion")
		return
	}
	if c.Iss != "0oaserviceapp" || c.Sub != c.Iss || c.Aud != f.srv.URL+"/oauth2/v1/token" || c.Exp <= f.clock.Now().Unix() {
		fail("claims")
		return
	}
	f.tokens++
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"token_type":"Bearer","expires_in":3600,"access_token":"okta-access-token","scope":"okta.logs.read"}`)
}

func newFakeOkta(t *testing.T, clock *windowtest.Clock, tl *windowtest.Timeline) *fakeOkta {
	f := &fakeOkta{t: t, tl: tl, clock: clock}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOkta) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	now := f.clock.Now()
	w.Header().Set("Date", now.Format(http.TimeFormat))
	reset := strconv.FormatInt(now.Truncate(time.Minute).Add(time.Minute).Unix(), 10)
	w.Header().Set("X-Rate-Limit-Limit", "120")
	w.Header().Set("X-Rate-Limit-Reset", reset)
	if r.URL.Path == "/oauth2/v1/token" {
		f.serveToken(w, r)
		return
	}
	if a := r.Header.Get("Authorization"); a != "SSWS "+testToken && (f.pub == nil || a != "Bearer okta-access-token") {
		f.badAuth++
		w.WriteHeader(401)
		w.Write([]byte(`{"errorCode":"E0000011","errorSummary":"Invalid token provided"}`))
		return
	}
	if r.URL.Path != "/api/v1/logs" {
		w.WriteHeader(404)
		return
	}
	if f.throttle > 0 && f.requests%f.throttle == 0 {
		w.Header().Set("X-Rate-Limit-Remaining", "0")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(429)
		w.Write([]byte(`{"errorCode":"E0000047","errorSummary":"API call exceeded rate limit due to too many requests."}`))
		return
	}
	w.Header().Set("X-Rate-Limit-Remaining", "100")
	q := r.URL.Query()
	if q.Get("sortOrder") != "ASCENDING" {
		f.t.Errorf("sortOrder %q", q.Get("sortOrder"))
	}
	since, err1 := time.Parse(time.RFC3339, q.Get("since"))
	until, err2 := time.Parse(time.RFC3339, q.Get("until"))
	limit, err3 := strconv.Atoi(q.Get("limit"))
	if err1 != nil || err2 != nil || err3 != nil || limit < 1 || limit > 1000 {
		w.WriteHeader(400)
		w.Write([]byte(`{"errorCode":"E0000001","errorSummary":"Api validation failed"}`))
		return
	}
	// `after` is opaque to clients: here, the id of the last event served.
	items := f.tl.Query(since, until, now, false)
	start := 0
	if a := q.Get("after"); a != "" {
		raw, err := base64.RawURLEncoding.DecodeString(a)
		if err != nil {
			w.WriteHeader(400)
			w.Write([]byte(`{"errorCode":"E0000001","errorSummary":"Invalid after"}`))
			return
		}
		start = len(items)
		for i, it := range items {
			if it.ID == string(raw) {
				start = i + 1
			}
		}
	}
	end := min(start+limit, len(items))
	page := make([]any, 0, end-start)
	for _, it := range items[start:end] {
		page = append(page, it.Payload)
	}
	self := f.srv.URL + r.URL.RequestURI()
	w.Header().Add("Link", fmt.Sprintf(`<%s>; rel="self"`, self))
	// Okta always offers a next link; after the last page it points at
	// the same place again.
	nq := url.Values{"since": {q.Get("since")}, "until": {q.Get("until")}, "limit": {q.Get("limit")}, "sortOrder": {"ASCENDING"}}
	after := q.Get("after")
	if end > start {
		after = base64.RawURLEncoding.EncodeToString([]byte(items[end-1].ID))
	}
	if after != "" {
		nq.Set("after", after)
	}
	w.Header().Add("Link", fmt.Sprintf(`<%s/api/v1/logs?%s>; rel="next"`, f.srv.URL, nq.Encode()))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(page)
}

func logEventItem(i int, at, visible time.Time) windowtest.Item {
	id := fmt.Sprintf("uuid-%05d", i)
	types := []string{"group.user_membership.add", "user.lifecycle.create", "user.session.start", "user.account.privilege.grant"}
	typ := types[i%len(types)]
	return windowtest.Item{ID: id, Time: at, VisibleAt: visible, Payload: map[string]any{
		"uuid": id, "published": at.Format(time.RFC3339Nano), "eventType": typ,
		"actor":   map[string]any{"id": "00uadmin", "type": "User", "alternateId": "admin@example.com"},
		"client":  map[string]any{"ipAddress": "198.51.100.1"},
		"outcome": map[string]any{"result": "SUCCESS"},
		"target": []any{
			map[string]any{"id": "00u" + id, "type": "User", "alternateId": "user" + id + "@example.com"},
			map[string]any{"id": "00gops", "type": "UserGroup", "displayName": "Ops"},
		},
		"debugContext": map[string]any{"debugData": map[string]any{"privilegeGranted": "Read-only administrator"}},
	}}
}

func provisioning(items []windowtest.Item) []string {
	var out []string
	for _, it := range items {
		if it.Payload.(map[string]any)["eventType"] != "user.session.start" {
			out = append(out, it.ID)
		}
	}
	return out
}

func testConfig(t *testing.T, srvURL string, extra string) *Config {
	t.Helper()
	src := fmt.Sprintf(`
base_url = %q
token = %q
page_size = 7
settle_lag = "2m"
overlap = "15m"
poll_interval = "5m"
rescan_interval = "1h"
rescan_lookback = "12h"
backfill_since = "2026-03-01T00:00:00Z"
%s`, srvURL, testToken, extra)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	return cfg
}

type rig struct {
	t     *testing.T
	clock *windowtest.Clock
	okta  *fakeOkta
	dir   string
	sink  *windowtest.Sink
	pc    collectors.ProblemCounter
}

func newRig(t *testing.T, items []windowtest.Item) *rig {
	clock := windowtest.NewClock(t0)
	tl := &windowtest.Timeline{}
	tl.Add(items...)
	return &rig{t: t, clock: clock, okta: newFakeOkta(t, clock, tl), dir: t.TempDir(), sink: &windowtest.Sink{}}
}

func (r *rig) run(until time.Time) bool {
	r.t.Helper()
	c, err := New(collectors.Settings{Type: Type, Name: "corp", StateDir: r.dir, Problems: &r.pc},
		testConfig(r.t, r.okta.srv.URL, ""), Options{Clock: r.clock, HTTPClient: r.okta.srv.Client()})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.clock.StopAt(until, cancel)
	err = c.Run(ctx, r.sink.Position(), r.sink)
	if errors.Is(err, windowtest.ErrCrash) {
		return true
	}
	if !errors.Is(err, context.Canceled) {
		r.t.Fatalf("Run: %v", err)
	}
	return false
}

func TestCollectorPagingThrottleLateCrash(t *testing.T) {
	var items []windowtest.Item
	for i := range 120 {
		at := t0.Add(time.Duration(i) * 3 * time.Minute)
		items = append(items, logEventItem(i, at, at.Add(30*time.Second)))
	}
	// Late: visible 10 minutes after its time (inside the overlap) and
	// 3 hours after (only the re-scan finds it).
	items = append(items,
		logEventItem(1001, t0.Add(61*time.Minute), t0.Add(71*time.Minute)),
		logEventItem(1005, t0.Add(62*time.Minute), t0.Add(4*time.Hour)),
	)
	want := provisioning(items)

	r := newRig(t, items)
	r.okta.throttle = 4
	r.sink.CrashAfter = 23 // mid-window, mid-page
	crashes := 0
	for r.run(t0.Add(8 * time.Hour)) {
		crashes++
		if crashes == 1 {
			r.sink.CrashAfter = len(r.sink.Records) + 31
		}
	}
	if crashes != 2 {
		t.Fatalf("%d crashes, want 2", crashes)
	}
	if err := windowtest.ExactlyOnce(r.sink.SourceIDs(), want); err != nil {
		t.Fatal(err)
	}
	if r.okta.badAuth != 0 {
		t.Fatalf("%d requests without the token", r.okta.badAuth)
	}
	if r.pc.Count() != 0 {
		t.Fatalf("%d problems", r.pc.Count())
	}
	for _, rec := range r.sink.Records {
		if rec.Event.Source.Instance != "corp" || rec.Event.Origin.Instance == "" {
			t.Fatalf("source/origin: %+v %+v", rec.Event.Source, rec.Event.Origin)
		}
	}
	// 429s were honoured: the client waited until X-Rate-Limit-Reset.
	waited := false
	for _, d := range r.clock.Sleeps() {
		if d > 2*time.Second && d <= 61*time.Second {
			waited = true
		}
	}
	if !waited {
		t.Fatal("never waited for a rate-limit reset")
	}
}

func TestNextLinkToAnotherHostIsRefused(t *testing.T) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("token sent to another host: %s", r.Header.Get("Authorization"))
	}))
	defer evil.Close()
	clock := windowtest.NewClock(t0.Add(time.Hour))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", fmt.Sprintf(`<%s/api/v1/logs?after=x>; rel="next"`, evil.URL))
		json.NewEncoder(w).Encode([]any{logEventItem(1, t0, t0).Payload})
	}))
	defer srv.Close()
	sink := &windowtest.Sink{}
	c, err := New(collectors.Settings{Name: "corp", StateDir: t.TempDir()}, testConfig(t, srv.URL, ""),
		Options{Clock: clock, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	clock.StopAt(t0.Add(2*time.Hour), cancel)
	c.Run(ctx, nil, sink)
	if len(sink.Records) != 1 {
		t.Fatalf("%d records, want 1", len(sink.Records))
	}
}

func TestConfigErrors(t *testing.T) {
	tests := map[string]string{
		`token = "x"`: "Missing okta domain",
		"domain = \"a.okta.com\"\nbase_url = \"https://b\"":          "Conflicting okta endpoint",
		`base_url = "http://acme.okta.com"`:                          "only over https",
		"domain = \"a.okta.com\"\ntoken = \"x\"\ntoken_file = \"y\"": "Conflicting okta credentials",
	}
	for src, want := range tests {
		f, _ := hclsyntax.ParseConfig([]byte(src), "a.hcl", hcl.InitialPos)
		cfg, diags := DecodeConfig(f.Body, hclconfig.EvalContext(".", nil))
		if !diags.HasErrors() {
			diags = cfg.Validate()
		}
		if !strings.Contains(diags.Error(), want) {
			t.Errorf("%q: %v, want %q", src, diags, want)
		}
	}
	f, _ := hclsyntax.ParseConfig([]byte("domain = \"a.okta.com\"\nsecret = 1\n"), "a.hcl", hcl.InitialPos)
	if _, diags := DecodeConfig(f.Body, hclconfig.EvalContext(".", nil)); !strings.Contains(diags.Error(), `Unsupported argument; An argument named "secret"`) {
		t.Errorf("unknown attribute: %v", diags)
	}
}

func TestNextLink(t *testing.T) {
	h := []string{`<https://a/api/v1/logs?x=1>; rel="self"`, `<https://a/api/v1/logs?after=abc>; rel="next"`}
	if got := window.NextLink(h); got != "https://a/api/v1/logs?after=abc" {
		t.Fatal(got)
	}
	if got := window.NextLink([]string{`<https://a/x>; rel="self", <https://a/y>; rel=next`}); got != "https://a/y" {
		t.Fatal(got)
	}
	if window.NextLink([]string{"garbage"}) != "" {
		t.Fatal("garbage")
	}
}

func TestOAuthServiceApp(t *testing.T) {
	var items []windowtest.Item
	for i := range 20 {
		at := t0.Add(time.Duration(i) * 5 * time.Minute)
		items = append(items, logEventItem(i, at, at))
	}
	r := newRig(t, items)
	key, pemKey := windowtest.RSAKey(t)
	r.okta.pub = &key.PublicKey
	keyFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
base_url = %q
oauth {
  client_id = "0oaserviceapp"
  private_key_file = %q
  key_id = "k1"
}
poll_interval = "5m"
backfill_since = "2026-03-01T00:00:00Z"
`, r.okta.srv.URL, keyFile)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	c, err := New(collectors.Settings{Name: "corp", StateDir: r.dir}, cfg, Options{Clock: r.clock, HTTPClient: r.okta.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.clock.StopAt(t0.Add(3*time.Hour), cancel)
	c.Run(ctx, nil, r.sink)
	if err := windowtest.ExactlyOnce(r.sink.SourceIDs(), provisioning(items)); err != nil {
		t.Fatal(err)
	}
	if r.okta.badAuth != 0 || r.okta.tokens != 1 {
		t.Fatalf("bad auth %d, token requests %d (want 0, 1)", r.okta.badAuth, r.okta.tokens)
	}
}
