package central

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/entitlements"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/signer"
)

func openTestStore(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteMigrateReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenSQLite(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("version %d err %v", v, err)
	}
	if err := s.PutAgent(ctx, Agent{ID: "a1", PublicKey: []byte("pem"), Source: "config", Status: AgentActive}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	s, err = OpenSQLite(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Agent(ctx, "a1")
	if err != nil || a.Status != AgentActive || string(a.PublicKey) != "pem" {
		t.Fatalf("agent after reopen: %+v %v", a, err)
	}
	if _, err := s.Agent(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown agent: %v", err)
	}
}

func testBatchWrite(agent string, seq uint64, events ...StoredEvent) *BatchWrite {
	var body []byte
	for i := range events {
		events[i].Ord = i
		body = append(append(body, events[i].JSON...), '\n')
	}
	return &BatchWrite{
		Batch: Batch{AgentID: agent, StreamID: "s1", Seq: seq, LogIndex: seq + 100, HeaderHash: []byte{byte(seq)},
			Record: []byte("{}"), Envelope: []byte("env"), Body: body, Encoding: "identity", Events: len(events), ReceivedAt: time.Now()},
		Events: events,
		Stream: Stream{AgentID: agent, StreamID: "s1", LastSeq: int64(seq), State: []byte(fmt.Sprintf(`{"next_seq":%d}`, seq+1)), Status: ChainOK, LastBatchAt: time.Now()},
	}
}

func TestSQLiteCommitAndQuery(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(id, actor, user, group, action, host string, min int) StoredEvent {
		return StoredEvent{EventID: id, Time: base.Add(time.Duration(min) * time.Minute), Action: action, Outcome: "success",
			Actor: actor, User: user, Group: group, System: "linux", Host: host, JSON: []byte(`{"id":"` + id + `"}`)}
	}
	res, err := s.CommitBatch(ctx, testBatchWrite("a1", 0,
		ev("e1", "root", "alice", "", "user.create", "h1", 0),
		ev("e2", "root", "alice", "wheel", "group.member.add", "h1", 1),
		ev("e3", "bob", "carol", "", "password.change", "h2", 2)))
	if err != nil || res.EventsStored != 3 {
		t.Fatalf("commit: %+v %v", res, err)
	}
	// e3 again in a later batch is skipped, e4 stored.
	res, err = s.CommitBatch(ctx, testBatchWrite("a1", 1, ev("e3", "bob", "carol", "", "password.change", "h2", 2), ev("e4", "root", "dave", "", "user.delete", "h1", 3)))
	if err != nil || res.EventsStored != 2 {
		t.Fatalf("commit 2: %+v %v", res, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitIndexed(wctx, res.BatchID); err != nil {
		t.Fatal(err)
	}
	// The same seq twice violates the batch uniqueness and leaves nothing.
	if _, err := s.CommitBatch(ctx, testBatchWrite("a1", 1, ev("e9", "x", "y", "", "user.create", "h1", 9))); err == nil {
		t.Fatal("second commit of seq 1 succeeded")
	}
	if _, err := s.EventByID(ctx, "e9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("event of failed commit stored: %v", err)
	}
	st, err := s.Stream(ctx, "a1", "s1")
	if err != nil || st.LastSeq != 1 || string(st.State) != `{"next_seq":2}` {
		t.Fatalf("stream: %+v %v", st, err)
	}
	tests := []struct {
		name string
		q    EventQuery
		want []string
	}{
		{"all", EventQuery{}, []string{"e1", "e2", "e3", "e4"}},
		{"actor", EventQuery{Actor: "root"}, []string{"e1", "e2", "e4"}},
		{"user", EventQuery{User: "alice"}, []string{"e1", "e2"}},
		{"group", EventQuery{Group: "wheel"}, []string{"e2"}},
		{"action", EventQuery{Action: "password.change"}, []string{"e3"}},
		{"host", EventQuery{Host: "h2"}, []string{"e3"}},
		{"system", EventQuery{System: "linux", Actor: "bob"}, []string{"e3"}},
		{"since", EventQuery{Since: base.Add(90 * time.Second)}, []string{"e3", "e4"}},
		{"until", EventQuery{Until: base.Add(90 * time.Second)}, []string{"e1", "e2"}},
		{"none", EventQuery{Actor: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			q := tc.q
			q.Limit = 1 // exercise pagination
			for range 10 {
				page, err := s.QueryEvents(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page.Events {
					got = append(got, e.EventID)
					if want := `{"id":"` + e.EventID + `"}`; string(e.JSON) != want {
						t.Fatalf("event JSON %q, want %q", e.JSON, want)
					}
				}
				if page.Next == "" {
					break
				}
				q.After = page.Next
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
	if _, err := s.QueryEvents(ctx, EventQuery{After: "garbage"}); err == nil {
		t.Fatal("bad cursor accepted")
	}
	var idx []uint64
	if err := s.ForEachBatch(ctx, func(b Batch) error { idx = append(idx, b.LogIndex); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(idx) != "[100 101]" {
		t.Fatalf("batches %v", idx)
	}
	if n, _ := s.MaxLogIndex(ctx); n != 101 {
		t.Fatalf("max log index %d", n)
	}
}

func TestSQLiteTokensEvidence(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t)
	now := time.Now()
	if err := s.CreateToken(ctx, EnrollToken{Hash: []byte("h"), UsesLeft: 1, ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseToken(ctx, []byte("h"), now, Agent{ID: "a", PublicKey: []byte("k"), Source: "token"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseToken(ctx, []byte("h"), now, Agent{ID: "b", PublicKey: []byte("k"), Source: "token"}); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("used-up token: %v", err)
	}
	if _, err := s.Agent(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Fatal("agent enrolled with a used-up token")
	}
	if err := s.CreateToken(ctx, EnrollToken{Hash: []byte("x"), UsesLeft: 5, ExpiresAt: now.Add(-time.Second), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseToken(ctx, []byte("x"), now, Agent{ID: "c", PublicKey: []byte("k")}); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("expired token: %v", err)
	}
	if err := s.AddEvidence(ctx, Evidence{Kind: "fork", AgentID: "a", StreamID: "s", Seq: 3, Reason: "r", Envelope: []byte("e"), ConflictsWith: 7},
		Alert{Kind: "fork", Severity: "critical", AgentID: "a", Message: "m"}); err != nil {
		t.Fatal(err)
	}
	al, err := s.Alerts(ctx, 10)
	if err != nil || len(al) != 1 || al[0].EvidenceID == 0 {
		t.Fatalf("alerts %+v %v", al, err)
	}
	ev, err := s.Evidence(ctx, al[0].EvidenceID)
	if err != nil || ev.Seq != 3 || ev.ConflictsWith != 7 {
		t.Fatalf("evidence %+v %v", ev, err)
	}
}

// TestIndexRecoveryFromBodies: batches committed but not indexed when the
// process stopped are indexed from their stored bodies on the next open.
func TestIndexRecoveryFromBodies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tool, err := OpenSQLiteTool(ctx, dir, false) // commits, never indexes
	if err != nil {
		t.Fatal(err)
	}
	ev := func(id string) StoredEvent {
		return StoredEvent{EventID: id, JSON: []byte(`{"id":"` + id + `","time":"2026-01-02T03:04:05Z","action":"user.create","actor":{"name":"root"},"target":{"user":{"name":"` + id + `"}},"origin":{"host":"h1"}}`)}
	}
	res, err := tool.CommitBatch(ctx, testBatchWrite("a1", 0, ev("x1"), ev("x2")))
	if err != nil {
		t.Fatal(err)
	}
	tool.Close()
	s, err := OpenSQLite(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitIndexed(wctx, res.BatchID); err != nil {
		t.Fatal(err)
	}
	page, err := s.QueryEvents(ctx, EventQuery{User: "x2", Actor: "root", Host: "h1"})
	if err != nil || len(page.Events) != 1 || page.Events[0].Ord != 1 {
		t.Fatalf("after recovery: %+v %v", page, err)
	}
	ro, err := OpenSQLiteTool(ctx, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.PutAgent(ctx, Agent{ID: "x"}); err == nil {
		t.Fatal("read-only store accepted a write")
	}
}

// TestEntitlementsLiveAndRebuilt: the entitlement table the indexer keeps
// from events parsed on the ingest path is the one it rebuilds from the
// stored bodies after a restart, and the one the entitlements package
// computes; an event repeated in a later batch changes nothing twice.
func TestEntitlementsLiveAndRebuilt(t *testing.T) {
	ctx := context.Background()
	line := func(id string, min int, action, target string) string {
		ts := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC).Add(time.Duration(min) * time.Minute).Format(time.RFC3339)
		return `{"id":"` + id + `","time":"` + ts + `","action":"` + action + `","outcome":"success","actor":{"name":"admin"},"target":` + target + `,"origin":{"system":"linux","host":"h1"}}`
	}
	batches := [][]string{
		{
			line("g1", 1, "group.member.add", `{"user":{"name":"u1"},"group":{"name":"wheel"}}`),
			line("g2", 2, "group.member.add", `{"user":{"name":"u2"},"group":{"name":"wheel"}}`),
			line("p1", 3, "privilege.grant", `{"user":{"name":"u1"},"privileges":["sudo","docker"]}`),
			line("m1", 4, "user.modify", `{"user":{"name":"u1"}}`),
		},
		{
			line("r2", 5, "group.member.remove", `{"user":{"name":"u2"},"group":{"name":"wheel"}}`),
			line("g3", 6, "group.member.add", `{"user":{"name":"u3"},"group":{"name":"adm"}}`),
			line("g4", 7, "group.member.add", `{"user":{"name":"u4"},"group":{"name":"adm"}}`),
		},
		{
			// Repeated after its revocation: not applied again.
			line("g2", 2, "group.member.add", `{"user":{"name":"u2"},"group":{"name":"wheel"}}`),
			line("d3", 9, "user.delete", `{"user":{"name":"u3"}}`),
			line("r1", 10, "privilege.revoke", `{"user":{"name":"u1"},"privileges":["docker"]}`),
			line("g5", 11, "group.member.add", `{"user":{"name":"u5"},"group":{"name":"ops"}}`),
			line("gd", 12, "group.delete", `{"group":{"name":"ops"}}`),
		},
	}
	writes := func() []*BatchWrite {
		var out []*BatchWrite
		for i, lines := range batches {
			body := []byte(strings.Join(lines, "\n") + "\n")
			evs, _ := parseEvents(body, signer.Digest{byte(i)}, nil)
			out = append(out, testBatchWrite("a1", uint64(i), evs...))
		}
		return out
	}
	// What the entitlements package says, each distinct event once.
	want := entitlements.NewTable()
	seen := map[string]bool{}
	for i, lines := range batches {
		for _, l := range lines {
			var ev event.Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatal(err)
			}
			if seen[ev.ID] {
				continue
			}
			seen[ev.ID] = true
			want.Apply(entitlements.Changes(&ev, int64(i+100)))
		}
	}
	wantHoldings := want.Holdings(nil)
	for i := range wantHoldings {
		wantHoldings[i].Since = wantHoldings[i].Since.UTC()
	}
	check := func(name string, s *SQLite, last int64) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.WaitIndexed(wctx, last); err != nil {
			t.Fatal(err)
		}
		got, err := s.Entitlements(ctx, EntitlementQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, wantHoldings) {
			t.Errorf("%s: holdings\n%+v\nwant\n%+v", name, got, wantHoldings)
		}
		if n := historyChanges(t, s); n != 12 {
			t.Errorf("%s: %d history changes, want 12", name, n)
		}
	}

	live := openTestStore(t)
	var last int64
	for _, w := range writes() {
		res, err := live.CommitBatch(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		last = res.BatchID
	}
	check("live", live, last)

	dir := t.TempDir()
	tool, err := OpenSQLiteTool(ctx, dir, false) // commits, never indexes
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range writes() {
		if _, err := tool.CommitBatch(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	tool.Close()
	rebuilt, err := OpenSQLite(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	check("rebuilt from bodies", rebuilt, last)
}
