package entra

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
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

var t0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

const (
	tenant = "contoso.onmicrosoft.com"
	secret = "s3cr3t-client-value"
	sub    = "00000000-1111-2222-3333-444444444444"
)

// fakeMicrosoft speaks the v2.0 token endpoint (client credentials), Graph
// directoryAudits ($filter on activityDateTime, newest first, $skiptoken
// in an absolute @odata.nextLink) and the Activity Log values API
// (nextLink), with 429 + Retry-After throttling.
type fakeMicrosoft struct {
	t      *testing.T
	clock  *windowtest.Clock
	graph  *windowtest.Timeline
	arm    *windowtest.Timeline
	srv    *httptest.Server
	mu     sync.Mutex
	n      int
	tokens map[string]int // scope -> token requests
	unauth int
	// throttle every Nth data request
	throttle int
}

var (
	graphFilter = regexp.MustCompile(`^activityDateTime ge (\S+) and activityDateTime le (\S+)$`)
	armFilter   = regexp.MustCompile(`^eventTimestamp ge '(\S+)' and eventTimestamp le '(\S+)' and resourceProvider eq 'Microsoft.Authorization'$`)
)

func newFake(t *testing.T, clock *windowtest.Clock) *fakeMicrosoft {
	f := &fakeMicrosoft{t: t, clock: clock, graph: &windowtest.Timeline{}, arm: &windowtest.Timeline{}, tokens: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMicrosoft) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/"+tenant+"/oauth2/v2.0/token" {
		r.ParseForm()
		if r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != "app-id" || r.PostForm.Get("client_secret") != secret {
			w.WriteHeader(401)
			w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		scope := r.PostForm.Get("scope")
		f.tokens[scope]++
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "tok-" + scope, "token_type": "Bearer", "expires_in": 3600})
		return
	}
	f.n++
	if f.throttle > 0 && f.n%f.throttle == 0 {
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(429)
		w.Write([]byte(`{"error":{"code":"TooManyRequests","message":"Too many requests."}}`))
		return
	}
	q := r.URL.Query()
	var tl *windowtest.Timeline
	var m []string
	var nextKey, scope string
	switch r.URL.Path {
	case "/v1.0/auditLogs/directoryAudits":
		tl, m, nextKey, scope = f.graph, graphFilter.FindStringSubmatch(q.Get("$filter")), "@odata.nextLink", f.srv.URL+"/.default"
	case "/subscriptions/" + sub + "/providers/Microsoft.Insights/eventtypes/management/values":
		if q.Get("api-version") != "2015-04-01" {
			w.WriteHeader(400)
			return
		}
		tl, m, nextKey, scope = f.arm, armFilter.FindStringSubmatch(q.Get("$filter")), "nextLink", f.srv.URL+"/.default"
	default:
		w.WriteHeader(404)
		return
	}
	if r.Header.Get("Authorization") != "Bearer tok-"+scope {
		f.unauth++
		w.WriteHeader(401)
		return
	}
	if m == nil {
		w.WriteHeader(400)
		w.Write([]byte(`{"error":{"code":"BadRequest","message":"Invalid filter clause"}}`))
		return
	}
	from, _ := time.Parse(time.RFC3339, m[1])
	to, _ := time.Parse(time.RFC3339, m[2])
	items := tl.Query(from, to.Add(time.Nanosecond), f.clock.Now(), true) // le: inclusive, newest first
	off := 0
	if s := q.Get("$skiptoken"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		off, _ = strconv.Atoi(string(b))
	}
	top := 2
	end := min(off+top, len(items))
	page := []any{}
	for _, it := range items[off:end] {
		page = append(page, it.Payload)
	}
	body := map[string]any{"value": page}
	if end < len(items) {
		nq := r.URL.Query()
		nq.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
		body[nextKey] = f.srv.URL + r.URL.Path + "?" + nq.Encode()
	}
	json.NewEncoder(w).Encode(body)
}

func graphItem(i int, at, visible time.Time) windowtest.Item {
	id := fmt.Sprintf("Directory_T_%05d", i)
	acts := []string{"Add member to group", "Add user", "Update user", "Add member to role"}
	return windowtest.Item{ID: id, Time: at, VisibleAt: visible, Payload: map[string]any{
		"id": id, "category": "GroupManagement", "result": "success", "activityDisplayName": acts[i%len(acts)],
		"activityDateTime": at.Format(time.RFC3339Nano), "loggedByService": "Core Directory",
		"initiatedBy": map[string]any{"user": map[string]any{"id": "a1", "userPrincipalName": "ada@contoso.com", "ipAddress": "198.51.100.20"}},
		"targetResources": []any{
			map[string]any{"id": "g1", "displayName": "Ops", "type": "Group"},
			map[string]any{"id": "u" + id, "type": "User", "userPrincipalName": "u" + id + "@contoso.com",
				"modifiedProperties": []any{map[string]any{"displayName": "Role.DisplayName", "newValue": `"User Administrator"`}}},
		},
	}}
}

func armItem(i int, at, visible time.Time, eventName string) windowtest.Item {
	id := fmt.Sprintf("ed-%05d-%s", i, eventName)
	status := map[string]string{"BeginRequest": "Started", "EndRequest": "Succeeded"}[eventName]
	return windowtest.Item{ID: id, Time: at, VisibleAt: visible, Payload: map[string]any{
		"caller": "ada@contoso.com", "eventDataId": id, "eventName": map[string]any{"value": eventName},
		"eventTimestamp": at.Format(time.RFC3339Nano), "operationName": map[string]any{"value": "Microsoft.Authorization/roleAssignments/write"},
		"status": map[string]any{"value": status}, "subscriptionId": sub, "resourceId": "/subscriptions/" + sub + "/x",
		"properties": map[string]any{"requestbody": `{"Properties":{"PrincipalId":"p1","PrincipalType":"User","RoleDefinitionId":"/r/owner","Scope":"/subscriptions/` + sub + `"}}`},
	}}
}

func TestCollectorGraphAndActivityLog(t *testing.T) {
	clock := windowtest.NewClock(t0)
	f := newFake(t, clock)
	f.throttle = 5
	var want []string
	for i := range 60 {
		at := t0.Add(time.Duration(i) * 4 * time.Minute)
		it := graphItem(i, at, at.Add(3*time.Minute))
		f.graph.Add(it)
		want = append(want, it.ID)
	}
	// A very late audit record, found only by the re-scan.
	late := graphItem(4000, t0.Add(30*time.Minute), t0.Add(3*time.Hour))
	f.graph.Add(late)
	want = append(want, late.ID)
	for i := range 10 {
		at := t0.Add(time.Duration(i) * 20 * time.Minute)
		f.arm.Add(armItem(i, at, at.Add(time.Minute), "BeginRequest"))
		end := armItem(i, at.Add(2*time.Second), at.Add(2*time.Minute), "EndRequest")
		f.arm.Add(end)
		want = append(want, end.ID)
	}

	src := fmt.Sprintf(`
tenant_id = %q
client_id = "app-id"
client_secret = %q
graph_url = %q
authority_url = %q
management_url = %q
activity_log_subscriptions = [%q]
poll_interval = "5m"
rescan_lookback = "12h"
backfill_since = "2026-05-01T00:00:00Z"
`, tenant, secret, f.srv.URL, f.srv.URL, f.srv.URL, sub)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	dir := t.TempDir()
	sink := &windowtest.Sink{CrashAfter: 17}
	var pc collectors.ProblemCounter
	crashes := windowtest.Restarts(t, clock, sink, windowtest.At(t0.Add(8*time.Hour)), func() (*Collector, error) {
		return New(collectors.Settings{Type: Type, Name: "contoso", StateDir: dir, Problems: &pc}, cfg,
			Options{Clock: clock, HTTPClient: f.srv.Client()})
	}, nil)
	if crashes != 1 {
		t.Fatalf("%d crashes, %d records, %d problems, %d requests, tokens %v", crashes, len(sink.Records), pc.Count(), f.n, f.tokens)
	}
	if err := windowtest.ExactlyOnce(sink.SourceIDs(), want); err != nil {
		t.Fatal(err)
	}
	if f.unauth != 0 || pc.Count() != 0 {
		t.Fatalf("unauthorised requests %d, problems %d", f.unauth, pc.Count())
	}
	// One token per API (Graph, ARM) per process start (two starts),
	// reused after.
	total := 0
	for _, n := range f.tokens {
		total += n
	}
	if total > 4 {
		t.Errorf("%d token requests: %v", total, f.tokens)
	}
	saw10 := false
	for _, d := range clock.Sleeps() {
		if d == 10*time.Second {
			saw10 = true
		}
	}
	if !saw10 {
		t.Error("Retry-After: 10 was not honoured")
	}
	for _, r := range sink.Records {
		if strings.Contains(r.Event.Raw, secret) {
			t.Fatal("client secret in an event")
		}
	}
}

func TestNewNeedsCredentials(t *testing.T) {
	t.Setenv(TenantEnv, "")
	t.Setenv(ClientEnv, "")
	t.Setenv(SecretEnv, "")
	cfg := &Config{}
	_, err := New(collectors.Settings{Name: "x"}, cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "AZURE_TENANT_ID") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv(TenantEnv, "t")
	t.Setenv(ClientEnv, "c")
	t.Setenv(SecretEnv, "s")
	if _, err := New(collectors.Settings{Name: "x", StateDir: t.TempDir()}, &Config{}, Options{}); err != nil {
		t.Fatalf("env credentials: %v", err)
	}
}
