package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	tlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/provtrail/provtrail/signer"
)

const testOrigin = "test.example/log"

// fakeLog serves central's proof API (GET /v1/checkpoint,
// /v1/proofs/agents/A/streams/S/seqs/N, /v1/consistency) from an RFC 6962
// tree held in memory, with checkpoints signed as C2SP notes. Published
// is the tree size its checkpoint covers; the handlers are central's wire
// format, so the Prover's client code is what runs.
type fakeLog struct {
	mu        sync.Mutex
	tree      *testonly.Tree
	leaves    [][]byte
	bySeq     map[string]int // "stream/seq" -> index
	published uint64
	signer    note.Signer
	// tamper rewrites a proof answer before it is sent.
	tamper func(*centralProof)
	hits   int
}

func newFakeLog(t *testing.T) (*fakeLog, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeLog{tree: testonly.New(rfc6962.DefaultHasher), bySeq: map[string]int{}, signer: s}, vkey
}

// add logs a leaf; stream/seq name it when it is a batch header.
func (l *fakeLog) add(leaf []byte, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tree.AppendData(leaf)
	l.leaves = append(l.leaves, leaf)
	if key != "" {
		l.bySeq[key] = len(l.leaves) - 1
	}
}

func (l *fakeLog) publish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.published = l.tree.Size()
}

func (l *fakeLog) checkpointLocked(size uint64) []byte {
	cp := tlog.Checkpoint{Origin: testOrigin, Size: size, Hash: l.tree.HashAt(size)}
	n, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, l.signer)
	if err != nil {
		panic(err)
	}
	return n
}

func (l *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hits++
	switch {
	case r.URL.Path == "/v1/checkpoint":
		w.Write(l.checkpointLocked(l.published))
	case r.URL.Path == "/v1/consistency":
		from, _ := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
		to, _ := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
		p, err := l.tree.ConsistencyProof(from, to)
		if err != nil || to > l.published {
			http.Error(w, fmt.Sprint(err), http.StatusTooEarly)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"from": from, "to": to, "hashes": p})
	case strings.HasPrefix(r.URL.Path, "/v1/proofs/agents/host-1/streams/"):
		rest := strings.TrimPrefix(r.URL.Path, "/v1/proofs/agents/host-1/streams/")
		stream, seq, _ := strings.Cut(rest, "/seqs/")
		idx, ok := l.bySeq[stream+"/"+seq]
		if !ok {
			http.Error(w, `{"verdict":"not_found"}`, http.StatusNotFound)
			return
		}
		if uint64(idx) >= l.published {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"verdict":"not_published"}`, http.StatusTooEarly)
			return
		}
		hashes, err := l.tree.InclusionProof(uint64(idx), l.published)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		p := centralProof{Index: uint64(idx), TreeSize: l.published, Hashes: hashes,
			Checkpoint: string(l.checkpointLocked(l.published)), Leaf: l.leaves[idx], TLogProof: "c2sp.org/tlog-proof@v1\n"}
		if l.tamper != nil {
			l.tamper(&p)
		}
		json.NewEncoder(w).Encode(p)
	default:
		http.NotFound(w, r)
	}
}

// sealHeaders signs n heartbeat batches as agent host-1 and returns their
// envelopes and receipts (seq order).
func sealHeaders(t *testing.T, n int) ([][]byte, []Receipt) {
	t.Helper()
	chain, err := signer.OpenChain(context.Background(), signer.ChainConfig{Dir: filepath.Join(t.TempDir(), "chain"),
		Audience: "test-central", AgentID: "host-1", Identity: testIdentity(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	var envs [][]byte
	var rs []Receipt
	for range n {
		b, err := chain.Seal(context.Background(), nil, signer.Meta{}, func(context.Context, signer.Batch) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		h, d, err := signer.Inspect(b, signer.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		seq := h.Seq
		envs = append(envs, b.Envelope)
		rs = append(rs, Receipt{Verdict: "accepted", Stream: h.StreamID, Seq: &seq, HeaderSHA256: d.String()})
	}
	return envs, rs
}

// metricValue reads a counter's or gauge's value.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

type proverRig struct {
	log   *fakeLog
	srv   *httptest.Server
	dir   string
	vkey  string
	m     *Metrics
	envs  [][]byte
	rcpts []Receipt
}

// newProverRig logs n of host-1's headers, each after a leaf of another
// agent, and writes their receipts as the Forwarder does.
func newProverRig(t *testing.T, n int) *proverRig {
	t.Helper()
	fl, vkey := newFakeLog(t)
	r := &proverRig{log: fl, srv: httptest.NewServer(fl), dir: t.TempDir(), vkey: vkey, m: NewMetrics(prometheus.NewRegistry())}
	t.Cleanup(r.srv.Close)
	r.envs, r.rcpts = sealHeaders(t, n)
	if err := os.MkdirAll(filepath.Join(r.dir, "receipts"), 0o700); err != nil {
		t.Fatal(err)
	}
	var lines strings.Builder
	for i, env := range r.envs {
		fl.add([]byte(fmt.Sprintf("other agent's header %d", i)), "")
		fl.add(env, fmt.Sprintf("%s/%d", r.rcpts[i].Stream, *r.rcpts[i].Seq))
		idx := uint64(2*i + 1)
		r.rcpts[i].LogIndex = &idx
		b, _ := json.Marshal(r.rcpts[i])
		lines.Write(append(b, '\n'))
	}
	if err := os.WriteFile(filepath.Join(r.dir, "receipts", "receipts.ndjson"), []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *proverRig) prover(t *testing.T) *Prover {
	t.Helper()
	p, err := NewProver(ProverConfig{URL: r.srv.URL, Client: r.srv.Client(), AgentID: "host-1", StateDir: r.dir, LogKey: r.vkey, Metrics: r.m})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (r *proverRig) proofs(t *testing.T) []ProofRecord {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "receipts", "proofs.ndjson"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []ProofRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var pr ProofRecord
		if err := json.Unmarshal([]byte(line), &pr); err != nil {
			t.Fatalf("proofs.ndjson line %q: %v", line, err)
		}
		out = append(out, pr)
	}
	return out
}

func TestProverProvesAcknowledgedBatches(t *testing.T) {
	r := newProverRig(t, 5)
	ctx := context.Background()
	// The checkpoint covers the first three of host-1's headers only.
	r.log.mu.Lock()
	r.log.published = 6
	r.log.mu.Unlock()
	p := r.prover(t)
	if err := p.round(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.proofs(t); len(got) != 3 {
		t.Fatalf("%d proofs after the first round, want 3 (the rest is not published)", len(got))
	}
	if b := metricValue(r.m.ProofBacklog); b != 2 {
		t.Fatalf("backlog %v, want 2", b)
	}
	// New receipts also arrive from the Forwarder while it runs.
	r.log.publish()
	p.Add(r.rcpts[4]) // already queued from the file: proven once
	if err := p.round(ctx); err != nil {
		t.Fatal(err)
	}
	got := r.proofs(t)
	if len(got) != 5 {
		t.Fatalf("%d proofs, want 5", len(got))
	}
	for i, pr := range got {
		tree := uint64(6) // proven in the first round
		if i >= 3 {
			tree = 10
		}
		if pr.Seq != *r.rcpts[i].Seq || pr.LogIndex != uint64(2*i+1) || pr.Header != r.rcpts[i].HeaderSHA256 || pr.TreeSize != tree {
			t.Errorf("proof %d: %+v", i, pr)
		}
	}
	if v := metricValue(r.m.ProofsVerified); v != 5 {
		t.Errorf("proofs verified metric %v", v)
	}
	for _, check := range []string{"checkpoint", "consistency", "inclusion", "leaf", "missing"} {
		if f := metricValue(r.m.ProofFailures.WithLabelValues(check)); f != 0 {
			t.Errorf("%v %s failures", f, check)
		}
	}
	if s := metricValue(r.m.LogTreeSize); s != 10 {
		t.Errorf("tree size %v", s)
	}

	// A restart proves nothing twice.
	r.log.mu.Lock()
	r.log.hits = 0
	r.log.mu.Unlock()
	p2 := r.prover(t)
	if err := p2.round(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.proofs(t); len(got) != 5 {
		t.Fatalf("%d proofs after a restart, want 5", len(got))
	}
	r.log.mu.Lock()
	hits := r.log.hits
	r.log.mu.Unlock()
	if hits != 0 {
		t.Errorf("a restart with nothing to prove asked central %d times", hits)
	}
}

func TestProverCatchesALyingLog(t *testing.T) {
	tests := []struct {
		name  string
		check string
		// lie changes the log after the prover saw a checkpoint of the
		// honest log, or makes it answer proofs falsely.
		lie func(t *testing.T, r *proverRig)
	}{
		{"rewritten history, larger tree", "consistency", func(t *testing.T, r *proverRig) {
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			fresh := testonly.New(rfc6962.DefaultHasher)
			fresh.AppendData([]byte("a different first leaf"))
			for _, l := range r.log.leaves[1:] {
				fresh.AppendData(l)
			}
			fresh.AppendData([]byte("one more"))
			r.log.tree = fresh
			r.log.leaves = append(r.log.leaves, []byte("one more"))
			r.log.published = fresh.Size()
		}},
		{"fork at the same size", "consistency", func(t *testing.T, r *proverRig) {
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			fresh := testonly.New(rfc6962.DefaultHasher)
			fresh.AppendData([]byte("a different first leaf"))
			for _, l := range r.log.leaves[1:r.log.published] {
				fresh.AppendData(l)
			}
			r.log.tree = fresh
		}},
		{"checkpoint signed by another key", "checkpoint", func(t *testing.T, r *proverRig) {
			other, _ := newFakeLog(t)
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			r.log.signer = other.signer
		}},
		{"proof for another batch", "leaf", func(t *testing.T, r *proverRig) {
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			r.log.tamper = func(p *centralProof) {
				if p.Index == 7 { // seq 3's leaf answered with seq 4's
					p.Leaf = r.envs[4]
				}
			}
		}},
		{"acknowledged batch unknown to central", "missing", func(t *testing.T, r *proverRig) {
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			delete(r.log.bySeq, fmt.Sprintf("%s/%d", r.rcpts[3].Stream, *r.rcpts[3].Seq))
		}},
		{"proof hashes that do not lead to the root", "inclusion", func(t *testing.T, r *proverRig) {
			r.log.mu.Lock()
			defer r.log.mu.Unlock()
			r.log.tamper = func(p *centralProof) {
				if p.Index == 7 && len(p.Hashes) > 0 {
					p.Hashes[0] = make([]byte, 32)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newProverRig(t, 5)
			ctx := context.Background()
			r.log.mu.Lock()
			r.log.published = 6 // seqs 0..2
			r.log.mu.Unlock()
			p := r.prover(t)
			if err := p.round(ctx); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(filepath.Join(r.dir, "receipts", "proofs.json"))
			tt.lie(t, r)
			r.log.mu.Lock()
			if r.log.published < 8 {
				r.log.published = min(r.log.tree.Size(), 10)
			}
			r.log.mu.Unlock()
			for range 2 {
				if err := p.round(ctx); err == nil {
					t.Fatal("a round against a lying log succeeded")
				}
			}
			if f := metricValue(r.m.ProofFailures.WithLabelValues(tt.check)); f != 2 {
				t.Errorf("%s failures: %v, want 2 (one per round)", tt.check, f)
			}
			if got := r.proofs(t); len(got) != 3 {
				t.Errorf("%d proofs recorded, want the 3 of the honest log", len(got))
			}
			// The lie does not become the agent's view of the log.
			after, _ := os.ReadFile(filepath.Join(r.dir, "receipts", "proofs.json"))
			if (tt.check == "consistency" || tt.check == "checkpoint") && string(after) != string(before) {
				t.Errorf("state moved to the lying log:\n%s\nwas\n%s", after, before)
			}
		})
	}
}

func TestProverRefusesABadLogKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewProver(ProverConfig{URL: "https://central.invalid", Client: http.DefaultClient, AgentID: "a", StateDir: dir, LogKey: "not a key"}); err == nil {
		t.Fatal("a malformed log key was accepted")
	}
}
