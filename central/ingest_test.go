package central

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"

	"github.com/provtrail/provtrail/signer"
)

func countEvents(t *testing.T, s *SQLite, q EventQuery) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	maxID, err := s.MaxBatchID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitIndexed(ctx, maxID); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		page, err := s.QueryEvents(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Events)
		if page.Next == "" {
			return n
		}
		q.After = page.Next
	}
}

func TestIngestEndToEndTLS(t *testing.T) {
	tc := startTestCentral(t, "host-1", "host-2")
	ctx := context.Background()
	a := tc.agents["host-1"]
	chainDir := filepath.Join(tc.dir, "chain-1")
	c := a.chain(t, chainDir)

	// In order: accepted, with a log index and a receipt.
	var receipts []*Receipt
	var first signer.Batch
	for i := range 3 {
		b := seal(t, c, "b"+string(rune('0'+i)), 10)
		if i == 0 {
			first = b
		}
		status, r := tc.post(t, b)
		if status != 200 || r.Verdict != signer.Accepted || r.LogIndex == nil || r.EventsStored != 10 {
			t.Fatalf("batch %d: %d %+v", i, status, r)
		}
		receipts = append(receipts, r)
	}
	// A heartbeat is accepted too.
	if status, r := tc.post(t, seal(t, c, "hb", 0)); status != 200 || r.Verdict != signer.Accepted {
		t.Fatalf("heartbeat: %d %+v", status, r)
	}

	// Replay: acknowledged as duplicate with the same index, stored once.
	last := seal(t, c, "b3", 5)
	if status, r := tc.post(t, last); status != 200 || r.Verdict != signer.Accepted {
		t.Fatalf("b3: %d %+v", status, r)
	}
	status, dup := tc.post(t, last)
	if status != 200 || dup.Verdict != signer.Duplicate || dup.LogIndex == nil {
		t.Fatalf("replay: %d %+v", status, dup)
	}
	// An older batch replayed is a duplicate too (found through history),
	// acknowledged with its original log index.
	status, old := tc.post(t, first)
	if status != 200 || old.Verdict != signer.Duplicate || old.LogIndex == nil || *old.LogIndex != *receipts[0].LogIndex {
		t.Fatalf("replay of seq 0: %d %+v", status, old)
	}
	if n := countEvents(t, tc.srv.Store(), EventQuery{}); n != 35 {
		t.Fatalf("events stored: %d, want 35", n)
	}
	if n := countEvents(t, tc.srv.Store(), EventQuery{Group: "wheel", Host: "host-b1"}); n != 10 {
		t.Fatalf("events of b1: %d", n)
	}

	// Everything below must be rejected and store nothing.
	before := countEvents(t, tc.srv.Store(), EventQuery{})
	maxIdx, _ := tc.srv.Store().MaxLogIndex(ctx)
	forkDir := filepath.Join(tc.dir, "chain-1-fork")
	copyDir(t, chainDir, forkDir) // holds the not-yet-used key for the next seq
	next := seal(t, c, "next", 3)

	changed := next
	changed.Body = append([]byte(nil), next.Body...)
	changed.Body[len(changed.Body)/2] ^= 0x01

	forgedSig := resign(t, next, func(env *signer.Envelope) { env.Signatures[0].Sig[0] ^= 0x01 }, nil)
	// The identity key already signed seq 0; it may not sign later seqs.
	usedKey := resign(t, next, nil, a.Key)

	other := newTestAgent(t, tc.dir, "ghost")
	ghost := seal(t, other.chain(t, filepath.Join(tc.dir, "chain-ghost")), "ghost", 2)
	wrongAud := seal(t, a.chain(t, filepath.Join(tc.dir, "chain-aud"), "another-central"), "aud", 2)

	tests := []struct {
		name   string
		wire   []byte
		batch  *signer.Batch
		status int
		want   signer.Verdict
		reason string
	}{
		{"changed body", nil, &changed, http.StatusUnprocessableEntity, signer.BodyMismatch, "SHA-256"},
		{"forged signature", nil, &forgedSig, http.StatusForbidden, signer.BadSignature, "does not verify"},
		{"already used key", nil, &usedKey, http.StatusForbidden, signer.UnknownKey, "stream expects key"},
		{"unknown agent", nil, &ghost, http.StatusForbidden, signer.UnknownKey, "not enrolled"},
		{"wrong audience", nil, &wrongAud, http.StatusMisdirectedRequest, signer.WrongAudience, "another-central"},
		{"garbage", []byte("not a batch at all, no magic"), nil, http.StatusBadRequest, signer.Malformed, "framing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var status int
			var r *Receipt
			if tt.batch != nil {
				status, r = tc.post(t, *tt.batch)
			} else {
				status, r = tc.postRaw(t, tt.wire)
			}
			if status != tt.status || r.Verdict != tt.want || !strings.Contains(r.Reason, tt.reason) {
				t.Fatalf("got %d %s %q, want %d %s containing %q", status, r.Verdict, r.Reason, tt.status, tt.want, tt.reason)
			}
			if r.LogIndex != nil {
				t.Fatalf("rejected batch got a log index")
			}
		})
	}
	if n := countEvents(t, tc.srv.Store(), EventQuery{}); n != before {
		t.Fatalf("rejected batches stored events: %d -> %d", before, n)
	}
	if m, _ := tc.srv.Store().MaxLogIndex(ctx); m != maxIdx {
		t.Fatalf("rejected batches stored a batch: %d -> %d", maxIdx, m)
	}
	alerts, _ := tc.srv.Store().Alerts(ctx, 100)
	kinds := map[string]int{}
	for _, al := range alerts {
		kinds[al.Kind]++
	}
	if kinds["forgery"] != 2 {
		t.Fatalf("forgery alerts: %v", alerts)
	}

	// The honest next batch is still accepted after all that.
	if status, r := tc.post(t, next); status != 200 || r.Verdict != signer.Accepted {
		t.Fatalf("honest next: %d %+v", status, r)
	}
	// A fork: a different batch for the same seq, validly signed with the
	// key for that seq (taken from a copy of the chain state).
	fc := a.chain(t, forkDir)
	fork := seal(t, fc, "fork", 4)
	status, r := tc.post(t, fork)
	if status != http.StatusConflict || r.Verdict != signer.Fork {
		t.Fatalf("fork: %d %+v", status, r)
	}
	alerts, _ = tc.srv.Store().Alerts(ctx, 1)
	if len(alerts) != 1 || alerts[0].Kind != "fork" || alerts[0].EvidenceID == 0 {
		t.Fatalf("fork alert: %+v", alerts)
	}
	ev, err := tc.srv.Store().Evidence(ctx, alerts[0].EvidenceID)
	if err != nil || string(ev.Envelope) != string(fork.Envelope) || ev.ConflictsWith < 0 {
		t.Fatalf("fork evidence: %+v %v", ev, err)
	}
	var agents map[string][]AgentView
	tc.getJSON(t, "/v1/agents", &agents)
	if st := agents["agents"][0].Streams; len(st) != 1 || st[0].Chain != ChainFork {
		t.Fatalf("agents view: %+v", agents)
	}

	// Gap: skip a seq.
	skipped := seal(t, c, "skipped", 1)
	_ = skipped
	ahead := seal(t, c, "ahead", 1)
	status, r = tc.post(t, ahead)
	if status != http.StatusAccepted || r.Verdict != signer.Gap || r.MissingFrom == nil || *r.MissingFrom != seqOf(t, skipped) {
		t.Fatalf("gap: %d %+v", status, r)
	}

	// Inclusion proof for the first receipt, verified against the
	// checkpoint it came with.
	var p Proof
	deadline := time.Now().Add(10 * time.Second)
	for tc.getJSON(t, "/v1/proofs/index/0", &p) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("no proof for index 0")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cp, _, _, err := log.ParseCheckpoint([]byte(p.Checkpoint), "central.test/log", tc.srv.Log().Verifier())
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(cp, *receipts[0].LogIndex, p.Leaf, p.Hashes); err != nil {
		t.Fatal(err)
	}
	var p2 Proof
	seqPath := "/v1/proofs/agents/host-1/streams/" + receipts[1].StreamID + "/seqs/1"
	if code := tc.getJSON(t, seqPath, &p2); code != 200 || p2.Index != *receipts[1].LogIndex {
		t.Fatalf("proof by seq: %d %+v", code, p2)
	}

	// Queries over HTTP, paginated.
	var page EventsResponse
	tc.getJSON(t, "/v1/events?host=host-b0&limit=4", &page)
	if len(page.Events) != 4 || page.Next == "" {
		t.Fatalf("events page: %d next %q", len(page.Events), page.Next)
	}
	var ev0 map[string]any
	json.Unmarshal(page.Events[0], &ev0)
	if ev0["id"] != "b0-0" {
		t.Fatalf("first event %v", ev0["id"])
	}

	// Revocation stops the agent's batches.
	if err := tc.srv.Store().SetAgentStatus(ctx, "host-1", AgentRevoked); err != nil {
		t.Fatal(err)
	}
	if status, r := tc.post(t, skipped); status != http.StatusForbidden || !strings.Contains(r.Reason, "revoked") {
		t.Fatalf("revoked: %d %+v", status, r)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/checkpoint", "/v1/log/checkpoint"} {
		if code := tc.getJSON(t, path, nil); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
	if code := tc.getJSON(t, "/v1/log/.state/treeState", nil); code != 404 {
		t.Fatalf("log internals served: %d", code)
	}
}

// resign rewrites a batch's envelope: edit changes it, or key re-signs the
// header as if key were the expected signer.
func resign(t *testing.T, b signer.Batch, edit func(*signer.Envelope), key *signer.PrivateKey) signer.Batch {
	t.Helper()
	var env signer.Envelope
	if err := json.Unmarshal(b.Envelope, &env); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&env)
	}
	if key != nil {
		var h map[string]any
		if err := json.Unmarshal(env.Payload, &h); err != nil {
			t.Fatal(err)
		}
		h["key_id"] = key.KeyID()
		payload, _ := json.Marshal(h)
		sig, err := key.Sign(context.Background(), signer.PAE(signer.PayloadType, payload))
		if err != nil {
			t.Fatal(err)
		}
		env.Payload = payload
		env.Signatures = []signer.EnvelopeSignature{{KeyID: key.KeyID(), Sig: sig}}
	}
	out := b
	var err error
	out.Envelope, err = json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func seqOf(t *testing.T, b signer.Batch) uint64 {
	t.Helper()
	h, _, err := signer.Inspect(b, signer.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

// TestCrashBetweenLogAndStore: a leaf appended to the log whose batch never
// reached the store (the process died in between) is reused when the agent
// resends the batch after a restart, so the log holds it once and the audit
// passes.
func TestCrashBetweenLogAndStore(t *testing.T) {
	tc := startTestCentral(t, "host-1")
	ctx := context.Background()
	c := tc.agents["host-1"].chain(t, filepath.Join(tc.dir, "chain"))
	if status, r := tc.post(t, seal(t, c, "first", 2)); status != 200 {
		t.Fatalf("%d %+v", status, r)
	}
	b := seal(t, c, "lost", 3)
	// Append only to the log, as if the store commit never happened.
	orphan, _, err := tc.srv.Log().Add(ctx, b.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := New(ctx, tc.cfg, Options{CheckpointInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tc.srv, tc.url = srv, "https://"+srv.Addr()
	status, r := tc.post(t, b)
	if status != 200 || r.Verdict != signer.Accepted || r.LogIndex == nil || *r.LogIndex != orphan {
		t.Fatalf("resend after crash: %d %+v, want index %d", status, r, orphan)
	}
	status, r = tc.post(t, seal(t, c, "after", 1))
	if status != 200 || *r.LogIndex != orphan+1 {
		t.Fatalf("next batch: %d %+v", status, r)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rep := auditDataDir(t, tc.cfg.Central.DataDir, nil)
	if !rep.OK() || rep.Leaves != 3 || rep.Events != 6 {
		t.Fatalf("audit: %+v", rep)
	}
}
