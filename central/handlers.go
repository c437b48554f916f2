package central

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/provtrail/provtrail/signer"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/batches", s.handleBatch)
	mux.HandleFunc("POST /v1/enroll", s.handleEnroll)
	mux.HandleFunc("GET /v1/checkpoint", s.handleCheckpoint)
	mux.HandleFunc("GET /v1/proofs/index/{index}", s.handleProofByIndex)
	mux.HandleFunc("GET /v1/proofs/agents/{agent}/streams/{stream}/seqs/{seq}", s.handleProofBySeq)
	mux.HandleFunc("GET /v1/consistency", s.handleConsistency)
	mux.HandleFunc("GET /v1/batches/index/{index}", s.handleBatchByIndex)
	mux.HandleFunc("GET /v1/events", s.handleEvents)
	mux.HandleFunc("GET /v1/agents", s.handleAgents)
	mux.HandleFunc("GET /v1/alerts", s.handleAlerts)
	mux.HandleFunc("POST /v1/alerts/{id}/ack", s.handleAck)
	mux.HandleFunc("GET /v1/entitlements", s.handleEntitlements)
	mux.HandleFunc("GET /v1/entitlements/drift", s.handleDrift)
	mux.HandleFunc("POST /v1/agents/{id}/status", s.handleStatus)
	mux.Handle("GET /v1/log/", http.StripPrefix("/v1/log/", http.HandlerFunc(s.handleLogFile)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Compact: events are served byte for byte as signed (RawMessage), and
	// indenting would reformat them.
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, status int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, s)
}

// apiError is the JSON body of every non-receipt error.
type apiError struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

func writeError(w http.ResponseWriter, status int, code, format string, args ...any) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, apiError{Error: code, Reason: fmt.Sprintf(format, args...)})
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	// Bounded concurrency: wait briefly for a slot, else tell the agent to
	// come back (it keeps the batch in its spool).
	t := time.NewTimer(100 * time.Millisecond)
	select {
	case s.sem <- struct{}{}:
		t.Stop()
	case <-t.C:
		s.metrics.overload()
		rc := &Receipt{Retry: true, Reason: "central is at its concurrent request limit"}
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, rc)
		return
	case <-r.Context().Done():
		return
	}
	defer func() { <-s.sem }()
	s.metrics.inflightAdd(1)
	defer s.metrics.inflightAdd(-1)

	limit := s.cfg.Central.MaxRequestBytes
	if limit <= 0 {
		limit = DefaultMaxRequestBytes
	}
	// Framing overhead and the envelope ride on top of the body limit.
	limit += int64(s.ingester.Limits().MaxEnvelope) + 64
	if r.ContentLength > limit {
		writeJSON(w, http.StatusRequestEntityTooLarge, &Receipt{Verdict: signer.TooLarge, Reason: fmt.Sprintf("request is %d bytes, limit %d", r.ContentLength, limit)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, &Receipt{Verdict: signer.TooLarge, Reason: fmt.Sprintf("request exceeds %d bytes", limit)})
			return
		}
		writeJSON(w, http.StatusBadRequest, &Receipt{Verdict: signer.Malformed, Reason: "reading request: " + err.Error()})
		return
	}
	rc, err := s.ingester.Ingest(r.Context(), body, r.RemoteAddr)
	if err != nil || rc.Retry {
		rc.Retry = true
		w.Header().Set("Retry-After", "1")
		if errors.Is(err, ErrOverloaded) && rc.Reason == "" {
			rc.Reason = "central overloaded"
		}
	}
	writeJSON(w, rc.HTTPStatus(), rc)
}

func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	_, raw, err := s.log.Checkpoint(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "no_checkpoint", "%v", err)
		return
	}
	writeText(w, http.StatusOK, string(raw))
}

// Proof is an inclusion proof of one log leaf, with the checkpoint it is
// relative to and the batch it is for.
type Proof struct {
	Index    uint64   `json:"index"`
	TreeSize uint64   `json:"tree_size"`
	Hashes   [][]byte `json:"hashes"`
	// Checkpoint is the signed checkpoint of TreeSize.
	Checkpoint string `json:"checkpoint"`
	// Leaf is the logged DSSE header envelope.
	Leaf     []byte `json:"leaf"`
	AgentID  string `json:"agent_id,omitempty"`
	StreamID string `json:"stream_id,omitempty"`
	Seq      uint64 `json:"seq"`
	// TLogProof is the same proof as a c2sp.org/tlog-proof@v1 text.
	TLogProof string `json:"tlog_proof"`
}

func (s *Server) proof(ctx context.Context, b Batch) (*Proof, int, error) {
	cp, raw, err := s.log.Checkpoint(ctx)
	if err != nil || cp.Size <= b.LogIndex {
		return nil, http.StatusTooEarly, fmt.Errorf("log index %d: %w", b.LogIndex, ErrNotPublished)
	}
	hashes, err := s.log.InclusionProof(ctx, b.LogIndex, cp.Size)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	p := &Proof{Index: b.LogIndex, TreeSize: cp.Size, Hashes: hashes, Checkpoint: string(raw), Leaf: b.Envelope,
		AgentID: b.AgentID, StreamID: b.StreamID, Seq: b.Seq}
	var sb strings.Builder
	sb.WriteString("c2sp.org/tlog-proof@v1\n")
	fmt.Fprintf(&sb, "index %d\n", b.LogIndex)
	for _, h := range hashes {
		sb.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	sb.WriteString("\n")
	sb.Write(raw)
	p.TLogProof = sb.String()
	return p, http.StatusOK, nil
}

func (s *Server) writeProof(w http.ResponseWriter, r *http.Request, b Batch, err error) {
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "%v", err)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", "%v", err)
		return
	}
	p, status, err := s.proof(r.Context(), b)
	if err != nil {
		if status == http.StatusTooEarly {
			w.Header().Set("Retry-After", "1")
			writeError(w, status, "not_published", "%v", err)
			return
		}
		writeError(w, status, "proof", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handleProofByIndex(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_index", "index must be a non-negative integer")
		return
	}
	b, err := s.store.BatchByLogIndex(r.Context(), idx)
	s.writeProof(w, r, b, err)
}

func (s *Server) handleProofBySeq(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_seq", "seq must be a non-negative integer")
		return
	}
	b, err := s.store.BatchBySeq(r.Context(), r.PathValue("agent"), r.PathValue("stream"), seq)
	s.writeProof(w, r, b, err)
}

// ConsistencyProof proves that the tree of size From is a prefix of the
// tree of size To.
type ConsistencyProof struct {
	From   uint64   `json:"from"`
	To     uint64   `json:"to"`
	Hashes [][]byte `json:"hashes"`
}

func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request) {
	from, err1 := strconv.ParseUint(r.URL.Query().Get("from"), 10, 64)
	to, err2 := strconv.ParseUint(r.URL.Query().Get("to"), 10, 64)
	if err1 != nil || err2 != nil || from > to {
		writeError(w, http.StatusBadRequest, "bad_range", "need from <= to, both tree sizes")
		return
	}
	cp, _, err := s.log.Checkpoint(r.Context())
	if err != nil || to > cp.Size {
		writeError(w, http.StatusTooEarly, "not_published", "tree size %d is not published yet", to)
		return
	}
	p, err := s.log.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "proof", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, ConsistencyProof{From: from, To: to, Hashes: p})
}

// StoredBatch is a stored batch as served for re-verification.
type StoredBatch struct {
	LogIndex uint64 `json:"log_index"`
	AgentID  string `json:"agent_id"`
	StreamID string `json:"stream_id"`
	Seq      uint64 `json:"seq"`
	Envelope []byte `json:"envelope"`
	// Body is the body exactly as signed (possibly compressed).
	Body       []byte    `json:"body"`
	ReceivedAt time.Time `json:"received_at"`
}

func (s *Server) handleBatchByIndex(w http.ResponseWriter, r *http.Request) {
	idx, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_index", "index must be a non-negative integer")
		return
	}
	b, err := s.store.BatchByLogIndex(r.Context(), idx)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "%v", err)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, StoredBatch{LogIndex: b.LogIndex, AgentID: b.AgentID, StreamID: b.StreamID, Seq: b.Seq,
		Envelope: b.Envelope, Body: b.Body, ReceivedAt: b.ReceivedAt})
}

// ParseEventQuery reads an EventQuery from URL query parameters (actor,
// user, group, action, system, host, since, until, after, limit). Times
// are RFC 3339.
func ParseEventQuery(v map[string][]string) (EventQuery, error) {
	get := func(k string) string {
		if len(v[k]) > 0 {
			return v[k][0]
		}
		return ""
	}
	q := EventQuery{Actor: get("actor"), User: get("user"), Group: get("group"), Action: get("action"),
		System: get("system"), Host: get("host"), After: get("after")}
	for _, tf := range []struct {
		key string
		dst *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if s := get(tf.key); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, fmt.Errorf("%s: %q is not an RFC 3339 time", tf.key, s)
			}
			*tf.dst = t
		}
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit: %q is not a positive integer", s)
		}
		q.Limit = n
	}
	return q, nil
}

// EventsResponse is a page of GET /v1/events.
type EventsResponse struct {
	Events []json.RawMessage `json:"events"`
	Next   string            `json:"next,omitempty"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q, err := ParseEventQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_query", "%v", err)
		return
	}
	if q.Limit == 0 {
		q.Limit = 100
	}
	page, err := s.store.QueryEvents(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusBadRequest, "query", "%v", err)
		return
	}
	resp := EventsResponse{Events: make([]json.RawMessage, 0, len(page.Events)), Next: page.Next}
	for _, e := range page.Events {
		if json.Valid(e.JSON) {
			resp.Events = append(resp.Events, e.JSON)
		} else {
			b, _ := json.Marshal(map[string]string{"id": e.EventID, "unparsed": string(e.JSON)})
			resp.Events = append(resp.Events, b)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// AgentView is one agent in GET /v1/agents.
type AgentView struct {
	ID       string      `json:"id"`
	Status   AgentStatus `json:"status"`
	Source   string      `json:"source"`
	Hostname string      `json:"hostname,omitempty"`
	// PublicKey is the enrolled identity key (PEM).
	PublicKey  string       `json:"public_key"`
	EnrolledAt time.Time    `json:"enrolled_at"`
	LastSeen   time.Time    `json:"last_seen,omitzero"`
	Streams    []StreamView `json:"streams"`
}

// StreamView is one stream's chain health.
type StreamView struct {
	StreamID      string      `json:"stream_id"`
	LastSeq       int64       `json:"last_seq"`
	Chain         ChainStatus `json:"chain"`
	Detail        string      `json:"detail,omitempty"`
	Since         time.Time   `json:"since,omitzero"`
	LastBatchAt   time.Time   `json:"last_batch_at,omitzero"`
	LastEventTime time.Time   `json:"last_event_time,omitzero"`
	// LagSeconds is how long the stream has been silent: seconds since
	// its last batch (heartbeats count), at the time of the request.
	LagSeconds float64 `json:"lag_seconds"`
}

// AgentViews lists the agents and their streams' chain health.
func AgentViews(ctx context.Context, store Store) ([]AgentView, error) {
	agents, err := store.Agents(ctx)
	if err != nil {
		return nil, err
	}
	streams, err := store.Streams(ctx, "")
	if err != nil {
		return nil, err
	}
	by := map[string][]StreamView{}
	for _, st := range streams {
		sv := StreamView{StreamID: st.StreamID, LastSeq: st.LastSeq, Chain: st.Status, Detail: st.StatusDetail,
			Since: st.StatusSince, LastBatchAt: st.LastBatchAt, LastEventTime: st.LastEventTime}
		if !st.LastBatchAt.IsZero() {
			sv.LagSeconds = time.Since(st.LastBatchAt).Round(100 * time.Millisecond).Seconds()
		}
		by[st.AgentID] = append(by[st.AgentID], sv)
	}
	out := make([]AgentView, 0, len(agents))
	for _, a := range agents {
		v := AgentView{ID: a.ID, Status: a.Status, Source: a.Source, Hostname: a.Hostname, PublicKey: string(a.PublicKey), EnrolledAt: a.EnrolledAt, LastSeen: a.LastSeen, Streams: by[a.ID]}
		if v.Streams == nil {
			v.Streams = []StreamView{}
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) handleAgents(w http.ResponseWriter, r *http.Request) {
	views, err := AgentViews(r.Context(), s.store)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"agents": views})
}

// handleLogFile serves the log's public tlog-tiles resources (checkpoint,
// tile/...) read-only, so auditors can verify with any tlog-tiles client.
func (s *Server) handleLogFile(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)[1:]
	if p != layout.CheckpointPath && !strings.HasPrefix(p, "tile/") {
		http.NotFound(w, r)
		return
	}
	f := filepath.Join(s.cfg.Central.DataDir, LogDir, filepath.FromSlash(p))
	data, err := os.ReadFile(f)
	if errors.Is(err, os.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "read error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if p == layout.CheckpointPath {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(data)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if _, err := s.store.SchemaVersion(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "store", "%v", err)
		return
	}
	if _, _, err := s.log.Checkpoint(r.Context()); err != nil {
		writeError(w, http.StatusServiceUnavailable, "log", "%v", err)
		return
	}
	writeText(w, http.StatusOK, "ready\n")
}
