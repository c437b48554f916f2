package github

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
)

var t0 = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

var phraseRE = regexp.MustCompile(`^created:(\S+)\.\.(\S+)$`)

// fakeGitHub speaks GET /orgs/{org}/audit-log: phrase created:A..B
// (inclusive), order=asc, per_page, Link rel="next" with an `after`
// cursor, and the primary rate limit (403, X-RateLimit-Remaining: 0,
// X-RateLimit-Reset) plus secondary limits (429 + Retry-After).
type fakeGitHub struct {
	clock *windowtest.Clock
	tl    *windowtest.Timeline
	srv   *httptest.Server
	mu    sync.Mutex
	n     int
	bad   int
}

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	now := f.clock.Now()
	w.Header().Set("Date", now.Format(http.TimeFormat))
	if r.Header.Get("Authorization") != "Bearer ghp_test" || r.URL.Path != "/orgs/octo-org/audit-log" {
		f.bad++
		w.WriteHeader(401)
		return
	}
	switch {
	case f.n%9 == 0:
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(90*time.Second).Unix(), 10))
		w.WriteHeader(403)
		w.Write([]byte(`{"message":"API rate limit exceeded"}`))
		return
	case f.n%13 == 0:
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(429)
		w.Write([]byte(`{"message":"You have exceeded a secondary rate limit."}`))
		return
	}
	q := r.URL.Query()
	m := phraseRE.FindStringSubmatch(q.Get("phrase"))
	if m == nil || q.Get("order") != "asc" {
		w.WriteHeader(422)
		return
	}
	from, _ := time.Parse(time.RFC3339, m[1])
	to, _ := time.Parse(time.RFC3339, m[2])
	items := f.tl.Query(from, to.Add(time.Second), now, false)
	start := 0
	if a := q.Get("after"); a != "" {
		b, _ := base64.StdEncoding.DecodeString(a)
		start = len(items)
		for i, it := range items {
			if it.ID == string(b) {
				start = i + 1
			}
		}
	}
	per, _ := strconv.Atoi(q.Get("per_page"))
	per = min(per, 3)
	end := min(start+per, len(items))
	page := []any{}
	for _, it := range items[start:end] {
		page = append(page, it.Payload)
	}
	if end < len(items) {
		nq := url.Values{"phrase": {q.Get("phrase")}, "order": {"asc"}, "per_page": {q.Get("per_page")}, "include": {q.Get("include")},
			"after": {base64.StdEncoding.EncodeToString([]byte(items[end-1].ID))}}
		w.Header().Set("Link", fmt.Sprintf(`<%s/orgs/octo-org/audit-log?%s>; rel="next"`, f.srv.URL, nq.Encode()))
	}
	json.NewEncoder(w).Encode(page)
}

func auditItem(i int, at, visible time.Time) windowtest.Item {
	id := fmt.Sprintf("doc-%05d", i)
	acts := []string{"org.add_member", "team.add_member", "repo.create", "org.update_member"}
	return windowtest.Item{ID: id, Time: at, VisibleAt: visible, Payload: map[string]any{
		"@timestamp": at.UnixMilli(), "_document_id": id, "action": acts[i%len(acts)], "actor": "octo-admin",
		"user": "user" + id, "org": "octo-org", "team": "octo-org/platform", "permission": "admin", "created_at": at.UnixMilli(),
	}}
}

func TestCollector(t *testing.T) {
	clock := windowtest.NewClock(t0)
	f := &fakeGitHub{clock: clock, tl: &windowtest.Timeline{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	defer f.srv.Close()
	var want []string
	for i := range 80 {
		at := t0.Add(time.Duration(i) * 3 * time.Minute)
		it := auditItem(i, at, at.Add(time.Minute))
		f.tl.Add(it)
		if i%4 != 2 {
			want = append(want, it.ID)
		}
	}
	late := auditItem(5001, t0.Add(10*time.Minute), t0.Add(2*time.Hour))
	f.tl.Add(late)
	want = append(want, late.ID)

	src := fmt.Sprintf("org = \"octo-org\"\ntoken = \"ghp_test\"\nbase_url = %q\npoll_interval = \"5m\"\nrescan_lookback = \"6h\"\nbackfill_since = \"2026-07-01T00:00:00Z\"\n", f.srv.URL)
	cfg := windowtest.Decode(t, src, DecodeConfig)
	dir := t.TempDir()
	sink := &windowtest.Sink{CrashAfter: 11}
	var pc collectors.ProblemCounter
	crashes := windowtest.Restarts(t, clock, sink, windowtest.At(t0.Add(8*time.Hour)), func() (*Collector, error) {
		return New(collectors.Settings{Type: Type, Name: "octo", StateDir: dir, Problems: &pc}, cfg, Options{Clock: clock, HTTPClient: f.srv.Client()})
	}, nil)
	if crashes != 1 || f.bad != 0 || pc.Count() != 0 {
		t.Fatalf("crashes %d, bad requests %d, problems %d", crashes, f.bad, pc.Count())
	}
	if err := windowtest.ExactlyOnce(sink.SourceIDs(), want); err != nil {
		t.Fatal(err)
	}
	var waited91, waited30 bool
	for _, d := range clock.Sleeps() {
		waited91 = waited91 || d == 91*time.Second
		waited30 = waited30 || d == 30*time.Second
	}
	if !waited91 || !waited30 {
		t.Fatalf("rate limits not honoured: reset wait %v, Retry-After wait %v", waited91, waited30)
	}
}
