package testenv

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/provtrail/provtrail/signer"
)

// Receiver is a minimal central ingest endpoint for agent tests: it
// answers POST /v1/batches like central (protocol v1), verifying every
// batch with the signer package against per-stream state, de-duplicating
// resends, and recording what it accepted. It can be taken "down" (503 with
// Retry-After) to test the agent's buffering.
type Receiver struct {
	URL string
	// CAFile is a PEM file with the server certificate (TLS receivers).
	CAFile string

	srv *httptest.Server
	v   *signer.Verifier

	mu       sync.Mutex
	agents   map[string]crypto.PublicKey
	streams  map[string]signer.StreamState // agent/stream
	history  map[string]signer.HeaderRecord
	batches  []ReceivedBatch
	verdicts map[string]int
	down     bool
	reject   map[uint64]string // seq -> verdict to answer instead
	discard  bool
	events   int
}

// ReceivedBatch is one accepted batch.
type ReceivedBatch struct {
	Agent, Stream, PrevStream string
	Seq                       uint64
	Heartbeat                 bool
	// Events are the NDJSON lines of the body, without newlines.
	Events [][]byte
}

// ReceiverOptions configures StartReceiver.
type ReceiverOptions struct {
	Audience string
	// Agents maps enrolled agent ids to their identity public keys.
	Agents map[string]crypto.PublicKey
	// TLS serves HTTPS (HTTP/2 enabled) with a self-signed certificate
	// written to CAFile.
	TLS bool
	// DiscardEvents keeps only counts of accepted events (benchmarks).
	DiscardEvents bool
}

// StartReceiver starts a receiver on 127.0.0.1, stopped in t.Cleanup.
func StartReceiver(t testing.TB, opt ReceiverOptions) *Receiver {
	t.Helper()
	r := &Receiver{
		agents: map[string]crypto.PublicKey{}, streams: map[string]signer.StreamState{},
		history: map[string]signer.HeaderRecord{}, verdicts: map[string]int{}, reject: map[uint64]string{},
		discard: opt.DiscardEvents,
	}
	// History is called from Verify while r.mu is held.
	hist := signer.HistoryFunc(func(_ context.Context, agent, stream string, seq uint64) (signer.HeaderRecord, bool, error) {
		rec, ok := r.history[agent+"/"+stream+"/"+strconv.FormatUint(seq, 10)]
		return rec, ok, nil
	})
	v, err := signer.NewVerifier(signer.VerifierConfig{Audience: opt.Audience, History: hist})
	if err != nil {
		t.Fatal(err)
	}
	r.v = v
	for id, pub := range opt.Agents {
		r.agents[id] = pub
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/batches", r.handle)
	r.srv = httptest.NewUnstartedServer(mux)
	if opt.TLS {
		r.srv.EnableHTTP2 = true
		r.srv.StartTLS()
		p := filepath.Join(t.TempDir(), "receiver-ca.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
		if err := os.WriteFile(p, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		r.CAFile = p
	} else {
		r.srv.Start()
	}
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// Close stops the receiver.
func (r *Receiver) Close() { r.srv.Close() }

// SetDown makes the receiver answer 503 with Retry-After: 1 (true) or
// work normally (false).
func (r *Receiver) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

// RejectSeq makes the receiver answer the batch with this seq with a
// rejecting verdict (such as "bad_signature") instead of verifying it.
func (r *Receiver) RejectSeq(seq uint64, verdict string) {
	r.mu.Lock()
	r.reject[seq] = verdict
	r.mu.Unlock()
}

// Batches returns the accepted batches in acceptance order.
func (r *Receiver) Batches() []ReceivedBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ReceivedBatch(nil), r.batches...)
}

// Verdicts counts the verdicts given so far.
func (r *Receiver) Verdicts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.verdicts {
		out[k] = v
	}
	return out
}

// EventCount returns how many events were accepted.
func (r *Receiver) EventCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events
}

type receipt struct {
	Verdict  string  `json:"verdict"`
	Reason   string  `json:"reason,omitempty"`
	LogIndex *uint64 `json:"log_index,omitempty"`
}

func (r *Receiver) handle(w http.ResponseWriter, req *http.Request) {
	answer := func(status int, rc receipt) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(rc)
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, signer.DefaultMaxBody+signer.DefaultMaxEnvelope+64))
	if err != nil {
		answer(http.StatusBadRequest, receipt{Verdict: "malformed", Reason: err.Error()})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		w.Header().Set("Retry-After", "1")
		answer(http.StatusServiceUnavailable, receipt{Reason: "down for the test"})
		return
	}
	b, err := signer.UnmarshalBatch(data, r.v.Limits())
	if err != nil {
		answer(http.StatusBadRequest, receipt{Verdict: "malformed", Reason: err.Error()})
		return
	}
	h, _, err := signer.Inspect(b, r.v.Limits())
	if err != nil {
		answer(http.StatusBadRequest, receipt{Verdict: "malformed", Reason: err.Error()})
		return
	}
	if v, ok := r.reject[h.Seq]; ok {
		delete(r.reject, h.Seq)
		r.verdicts[v]++
		var verdict signer.Verdict
		verdict.UnmarshalText([]byte(v))
		answer(verdict.HTTPStatus(), receipt{Verdict: v, Reason: "rejected by the test"})
		return
	}
	pub, ok := r.agents[h.AgentID]
	if !ok {
		answer(http.StatusForbidden, receipt{Reason: "agent " + h.AgentID + " is not enrolled"})
		return
	}
	key := h.AgentID + "/" + h.StreamID
	st, ok := r.streams[key]
	if !ok {
		st, err = signer.NewStreamState(h.AgentID, pub)
		if err != nil {
			answer(http.StatusInternalServerError, receipt{Reason: err.Error()})
			return
		}
	}
	res, err := r.v.Verify(req.Context(), st, b)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		answer(http.StatusServiceUnavailable, receipt{Reason: err.Error()})
		return
	}
	r.verdicts[res.Verdict.String()]++
	if res.Verdict == signer.Accepted {
		r.streams[key] = res.Next
		r.history[key+"/"+strconv.FormatUint(h.Seq, 10)] = res.Record
		rb := ReceivedBatch{Agent: h.AgentID, Stream: h.StreamID, PrevStream: h.PrevStream, Seq: h.Seq, Heartbeat: h.Events == 0}
		r.events += h.Events
		if !r.discard {
			for _, line := range bytes.Split(res.Body, []byte("\n")) {
				if len(line) > 0 {
					rb.Events = append(rb.Events, append([]byte(nil), line...))
				}
			}
		}
		r.batches = append(r.batches, rb)
	}
	idx := uint64(len(r.batches))
	answer(res.Verdict.HTTPStatus(), receipt{Verdict: res.Verdict.String(), Reason: res.Reason, LogIndex: &idx})
}
