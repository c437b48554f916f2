package workspace

import (
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
)

var t0 = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

// fakeWorkspace speaks the JWT-bearer token endpoint (checking the RS256
// signature and that the service account acts as the configured admin)
// and activities.list for the admin application: startTime/endTime,
// newest first within and across pages, pageToken bound to the query,
// 403 rateLimitExceeded and 429 throttling.
type fakeWorkspace struct {
	clock *windowtest.Clock
	tl    *windowtest.Timeline
	pub   *rsa.PublicKey
	srv   *httptest.Server
	mu    sync.Mutex
	n     int
	bad   int
}

func (f *fakeWorkspace) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/token" {
		r.ParseForm()
		if !f.verify(r.PostForm.Get("assertion")) {
			f.bad++
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"unauthorized_client"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"ya29.ws","token_type":"Bearer","expires_in":3600}`)
		return
	}
	if r.URL.Path != "/admin/reports/v1/activity/users/all/applications/admin" || r.Header.Get("Authorization") != "Bearer ya29.ws" {
		f.bad++
		w.WriteHeader(401)
		return
	}
	f.n++
	switch {
	case f.n%7 == 0:
		w.WriteHeader(403)
		fmt.Fprint(w, `{"error":{"code":403,"message":"Quota exceeded","errors":[{"domain":"usageLimits","reason":"rateLimitExceeded"}]}}`)
		return
	case f.n%11 == 0:
		w.WriteHeader(429)
		fmt.Fprint(w, `{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}`)
		return
	}
	q := r.URL.Query()
	from, err1 := time.Parse(time.RFC3339Nano, q.Get("startTime"))
	to, err2 := time.Parse(time.RFC3339Nano, q.Get("endTime"))
	if err1 != nil || err2 != nil {
		w.WriteHeader(400)
		return
	}
	items := f.tl.Query(from, to, f.clock.Now(), true)
	off := 0
	if tok := q.Get("pageToken"); tok != "" {
		o, key, _ := strings.Cut(tok, "|")
		if key != q.Get("startTime")+q.Get("endTime") {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":{"code":400,"message":"Invalid pageToken"}}`)
			return
		}
		off, _ = strconv.Atoi(o)
	}
	max, _ := strconv.Atoi(q.Get("maxResults"))
	end := min(off+min(max, 3), len(items))
	var page []any
	for _, it := range items[off:end] {
		page = append(page, it.Payload)
	}
	out := map[string]any{"kind": "admin#reports#activities", "items": page}
	if end < len(items) {
		out["nextPageToken"] = strconv.Itoa(end) + "|" + q.Get("startTime") + q.Get("endTime")
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeWorkspace) verify(jwt string) bool {
	var c struct{ Iss, Sub, Scope string }
	return windowtest.VerifyJWT(jwt, f.pub, &c) &&
		c.Iss == "reports@proj.iam.gserviceaccount.com" && c.Sub == "reporting-admin@example.com" && c.Scope == Scope
}

func activityItem(i int, at, visible time.Time) windowtest.Item {
	uq := strconv.Itoa(-1000 - i)
	names := []string{"ADD_GROUP_MEMBER", "CREATE_USER", "CHANGE_DOMAIN_DEFAULT_LOCALE", "SUSPEND_USER"}
	name := names[i%len(names)]
	return windowtest.Item{ID: at.Format("2006-01-02T15:04:05.000Z") + "/" + uq + "/admin/C01", Time: at, VisibleAt: visible, Payload: map[string]any{
		"kind":  "admin#reports#activity",
		"id":    map[string]any{"time": at.Format("2006-01-02T15:04:05.000Z"), "uniqueQualifier": uq, "applicationName": "admin", "customerId": "C01"},
		"actor": map[string]any{"callerType": "USER", "email": "admin@example.com", "profileId": "1"}, "ipAddress": "203.0.113.10",
		"events": []any{map[string]any{"type": "X", "name": name, "parameters": []any{
			map[string]any{"name": "USER_EMAIL", "value": fmt.Sprintf("u%d@example.com", i)},
			map[string]any{"name": "GROUP_EMAIL", "value": "eng@example.com"},
		}}},
	}}
}

func TestCollector(t *testing.T) {
	clock := windowtest.NewClock(t0)
	f := &fakeWorkspace{clock: clock, tl: &windowtest.Timeline{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	defer f.srv.Close()
	saFile, pub := windowtest.ServiceAccount(t, "reports@proj.iam.gserviceaccount.com", "https://oauth2.googleapis.com/token")
	f.pub = pub

	var want []string
	for i := range 60 {
		at := t0.Add(time.Duration(i) * 4 * time.Minute)
		it := activityItem(i, at, at.Add(2*time.Minute))
		f.tl.Add(it)
		if i%4 != 2 {
			want = append(want, it.ID)
		}
	}
	// Admin events are "near real time", with a documented small chance
	// of much longer delays.
	late := activityItem(4001, t0.Add(20*time.Minute), t0.Add(5*time.Hour))
	f.tl.Add(late)
	want = append(want, late.ID)

	src := fmt.Sprintf(`
credentials_file = %q
subject = "reporting-admin@example.com"
token_url = "%s/token"
endpoint_url = %q
poll_interval = "5m"
rescan_lookback = "8h"
backfill_since = "2026-09-01T00:00:00Z"
`, saFile, f.srv.URL, f.srv.URL)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	dir := t.TempDir()
	sink := &windowtest.Sink{CrashAfter: 13}
	var pc collectors.ProblemCounter
	crashes := windowtest.Restarts(t, clock, sink, windowtest.At(t0.Add(9*time.Hour)), func() (*Collector, error) {
		return New(collectors.Settings{Type: Type, Name: "example", StateDir: dir, Problems: &pc}, cfg, Options{Clock: clock, HTTPClient: f.srv.Client()})
	}, nil)
	if crashes != 1 || f.bad != 0 || pc.Count() != 0 {
		t.Fatalf("crashes %d, bad %d, problems %d", crashes, f.bad, pc.Count())
	}
	if err := windowtest.ExactlyOnce(sink.SourceIDs(), want); err != nil {
		t.Fatal(err)
	}
}
