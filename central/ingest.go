package central

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/central/entitlements"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/signer"
)

// Receipt is central's JSON answer to a POSTed batch (docs/protocol.md,
// "Receipts"). Verdict and Reason are always set; the rest where known.
type Receipt struct {
	Verdict signer.Verdict `json:"verdict"`
	Reason  string         `json:"reason,omitempty"`
	// Retry is true when the batch was not judged (central overloaded or a
	// store error): resend it unchanged later.
	Retry        bool   `json:"retry,omitempty"`
	AgentID      string `json:"agent_id,omitempty"`
	StreamID     string `json:"stream_id,omitempty"`
	Seq          uint64 `json:"seq"`
	HeaderSHA256 string `json:"header_sha256,omitempty"`
	// LogIndex is the header's leaf index in the transparency log
	// (accepted and duplicate).
	LogIndex *uint64 `json:"log_index,omitempty"`
	// Checkpoint is the latest published signed checkpoint (C2SP
	// tlog-checkpoint). It may not cover LogIndex yet: fetch the inclusion
	// proof later from ProofPath.
	Checkpoint string `json:"checkpoint,omitempty"`
	ProofPath  string `json:"proof_path,omitempty"`
	// EventsStored is the number of events stored with the batch (they
	// are queryable once indexed, normally within milliseconds).
	EventsStored int `json:"events_stored,omitempty"`
	// MissingFrom and MissingTo bound the missing seqs [from, to) of a gap.
	MissingFrom *uint64 `json:"missing_from,omitempty"`
	MissingTo   *uint64 `json:"missing_to,omitempty"`
}

// HTTPStatus is the status code the receipt is sent with.
func (r *Receipt) HTTPStatus() int {
	if r.Retry {
		return 503
	}
	return r.Verdict.HTTPStatus()
}

// IngestConfig configures an Ingester.
type IngestConfig struct {
	Audience string
	Limits   signer.Limits
	// MaxIndexBacklog is how many stored events may wait to be indexed
	// before new batches are answered 503 + Retry-After (backpressure that
	// bounds memory and query staleness). Zero means DefaultMaxIndexBacklog.
	MaxIndexBacklog int
	// MaxEvidencePerAgent bounds how many rejected batches are kept as
	// evidence per claimed agent, so that junk cannot fill the disk.
	MaxEvidencePerAgent int
	Logger              *slog.Logger
	Metrics             *Metrics
}

// DefaultMaxIndexBacklog is the default IngestConfig.MaxIndexBacklog.
const DefaultMaxIndexBacklog = 200_000

// indexBacklogger is implemented by stores that index asynchronously.
type indexBacklogger interface{ IndexBacklog() int }

// Ingester verifies batches and commits accepted ones to the log and the
// store. Safe for concurrent use: batches of one stream are serialised,
// different streams run in parallel.
type Ingester struct {
	cfg      IngestConfig
	store    Store
	log      *Log
	verifier *signer.Verifier
	logger   *slog.Logger
	metrics  *Metrics

	// onStored is called after each accepted batch is committed.
	onStored func(ctx context.Context, b Batch, events []StoredEvent)
	// raise sends a built-in alert to the notifiers (nil: none).
	raise func(ctx context.Context, a alerts.Alert)

	mu    sync.Mutex
	locks map[string]*streamLock
	evid  map[string]int // evidence kept per agent since start
	// orphans maps the leaf hash of log entries that have no stored batch
	// (the process stopped between log append and store commit) to their
	// index, so that the resent batch reuses its leaf.
	orphans map[[32]byte]uint64
}

type streamLock struct {
	mu   sync.Mutex
	refs int
}

// NewIngester returns an Ingester over store and log.
func NewIngester(cfg IngestConfig, store Store, log *Log) (*Ingester, error) {
	if cfg.MaxEvidencePerAgent == 0 {
		cfg.MaxEvidencePerAgent = 1000
	}
	if cfg.MaxIndexBacklog == 0 {
		cfg.MaxIndexBacklog = DefaultMaxIndexBacklog
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	in := &Ingester{cfg: cfg, store: store, log: log, logger: logger, metrics: cfg.Metrics,
		locks: map[string]*streamLock{}, evid: map[string]int{}}
	v, err := signer.NewVerifier(signer.VerifierConfig{Audience: cfg.Audience, Limits: cfg.Limits, History: signer.HistoryFunc(in.headerAt), Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("ingester: %w", err)
	}
	in.verifier = v
	return in, nil
}

// Reconcile finds log entries newer than the newest stored batch: leaves
// appended before a crash whose batch was never committed. A resend of
// such a batch reuses its leaf instead of logging it twice. Call it once
// before ingesting.
func (in *Ingester) Reconcile(ctx context.Context) (int, error) {
	maxIdx, err := in.store.MaxLogIndex(ctx)
	if err != nil {
		return 0, err
	}
	leaves, err := in.log.EntriesFrom(ctx, uint64(maxIdx+1))
	if err != nil {
		return 0, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.orphans == nil {
		in.orphans = map[[32]byte]uint64{}
	}
	for i, leaf := range leaves {
		in.orphans[sha256.Sum256(leaf)] = uint64(maxIdx+1) + uint64(i)
	}
	if len(leaves) > 0 {
		in.logger.Warn("log has leaves without stored batches (stopped between log and store); their batches reuse them when resent", "count", len(leaves), "first_index", maxIdx+1)
	}
	return len(leaves), nil
}

func (in *Ingester) appendLeaf(ctx context.Context, envelope []byte) (uint64, error) {
	h := sha256.Sum256(envelope)
	in.mu.Lock()
	idx, ok := in.orphans[h]
	in.mu.Unlock()
	if ok {
		return idx, nil
	}
	idx, _, err := in.log.Add(ctx, envelope)
	return idx, err
}

func (in *Ingester) leafStored(envelope []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.orphans) > 0 {
		delete(in.orphans, sha256.Sum256(envelope))
	}
}

// Limits returns the effective batch limits.
func (in *Ingester) Limits() signer.Limits { return in.verifier.Limits() }

func (in *Ingester) headerAt(ctx context.Context, agentID, streamID string, seq uint64) (signer.HeaderRecord, bool, error) {
	b, err := in.store.BatchBySeq(ctx, agentID, streamID, seq)
	if errors.Is(err, ErrNotFound) {
		return signer.HeaderRecord{}, false, nil
	}
	if err != nil {
		return signer.HeaderRecord{}, false, err
	}
	var rec signer.HeaderRecord
	if err := json.Unmarshal(b.Record, &rec); err != nil {
		return signer.HeaderRecord{}, false, fmt.Errorf("stored header record of %s/%s/%d: %w", agentID, streamID, seq, err)
	}
	return rec, true, nil
}

func (in *Ingester) lock(key string) func() {
	in.mu.Lock()
	l := in.locks[key]
	if l == nil {
		l = &streamLock{}
		in.locks[key] = l
	}
	l.refs++
	in.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		in.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(in.locks, key)
		}
		in.mu.Unlock()
	}
}

func reject(r *Receipt, v signer.Verdict, format string, args ...any) *Receipt {
	r.Verdict = v
	r.Reason = fmt.Sprintf(format, args...)
	return r
}

// Ingest judges one wire-encoded batch and returns the receipt. The error
// is non-nil only when the batch could not be judged (the receipt then has
// Retry set): nothing was stored for it.
func (in *Ingester) Ingest(ctx context.Context, wire []byte, remote string) (*Receipt, error) {
	start := time.Now()
	r, err := in.ingest(ctx, wire, remote)
	in.metrics.observeIngest(r, time.Since(start))
	if err != nil {
		in.logger.Warn("batch not judged", "agent", r.AgentID, "stream", r.StreamID, "seq", r.Seq, "err", err)
	} else if !r.Verdict.Acknowledged() {
		in.logger.Info("batch rejected", "agent", r.AgentID, "stream", r.StreamID, "seq", r.Seq, "verdict", r.Verdict.String(), "reason", r.Reason, "remote", remote)
	}
	return r, err
}

func (in *Ingester) ingest(ctx context.Context, wire []byte, remote string) (*Receipt, error) {
	r := &Receipt{}
	lim := in.verifier.Limits()
	b, err := signer.UnmarshalBatch(wire, lim)
	if err != nil {
		var ve *signer.VerdictError
		if errors.As(err, &ve) {
			return reject(r, ve.Verdict, "%s", ve.Reason), nil
		}
		return reject(r, signer.Malformed, "%s", err), nil
	}
	h, digest, err := signer.Inspect(b, lim)
	if err != nil {
		var ve *signer.VerdictError
		if errors.As(err, &ve) {
			return reject(r, ve.Verdict, "%s", ve.Reason), nil
		}
		return reject(r, signer.Malformed, "%s", err), nil
	}
	r.AgentID, r.StreamID, r.Seq, r.HeaderSHA256 = h.AgentID, h.StreamID, h.Seq, digest.String()
	if h.Audience != in.cfg.Audience {
		return reject(r, signer.WrongAudience, "batch is for audience %q, this central is %q", truncateStr(h.Audience, 80), in.cfg.Audience), nil
	}
	agent, err := in.store.Agent(ctx, h.AgentID)
	switch {
	case errors.Is(err, ErrNotFound):
		return reject(r, signer.UnknownKey, "agent %q is not enrolled", truncateStr(h.AgentID, 80)), nil
	case err != nil:
		r.Retry = true
		return reject(r, 0, "store unavailable"), fmt.Errorf("look up agent %s: %w", h.AgentID, err)
	case agent.Status == AgentRevoked:
		return reject(r, signer.UnknownKey, "agent %q is revoked", h.AgentID), nil
	case agent.Status == AgentPending:
		return reject(r, signer.UnknownKey, "agent %q is waiting for approval", h.AgentID), nil
	}
	identity, err := signer.ParsePublicKeyPEM(agent.PublicKey)
	if err != nil {
		r.Retry = true
		return reject(r, 0, "enrolled key unreadable"), fmt.Errorf("agent %s enrolled key: %w", h.AgentID, err)
	}

	unlock := in.lock(h.AgentID + "\x00" + h.StreamID)
	defer unlock()

	stored, err := in.store.Stream(ctx, h.AgentID, h.StreamID)
	var st signer.StreamState
	switch {
	case errors.Is(err, ErrNotFound) || (err == nil && len(stored.State) == 0):
		stored = Stream{AgentID: h.AgentID, StreamID: h.StreamID, LastSeq: -1, Status: ChainOK}
		if st, err = signer.NewStreamState(h.AgentID, identity); err != nil {
			r.Retry = true
			return reject(r, 0, "enrolled key unusable"), fmt.Errorf("agent %s: %w", h.AgentID, err)
		}
	case err != nil:
		r.Retry = true
		return reject(r, 0, "store unavailable"), fmt.Errorf("stream %s/%s: %w", h.AgentID, h.StreamID, err)
	default:
		if err := json.Unmarshal(stored.State, &st); err != nil {
			r.Retry = true
			return reject(r, 0, "stream state unreadable"), fmt.Errorf("stream %s/%s state: %w", h.AgentID, h.StreamID, err)
		}
	}

	t0 := time.Now()
	res, err := in.verifier.Verify(ctx, st, b)
	in.metrics.phase("verify", t0)
	if err != nil {
		r.Retry = true
		return reject(r, 0, "cannot judge the batch now"), err
	}
	r.Verdict, r.Reason = res.Verdict, res.Reason
	switch res.Verdict {
	case signer.Accepted:
		return in.accept(ctx, r, &b, &res, stored, agent, identity)
	case signer.Duplicate:
		prev, err := in.store.BatchBySeq(ctx, h.AgentID, h.StreamID, h.Seq)
		if err != nil {
			r.Retry = true
			return r, fmt.Errorf("duplicate %s/%s/%d: %w", h.AgentID, h.StreamID, h.Seq, err)
		}
		in.fillLog(ctx, r, prev.LogIndex)
		return r, nil
	case signer.Gap:
		from, to := res.MissingFrom, res.MissingTo
		r.MissingFrom, r.MissingTo = &from, &to
		if err := in.store.SetStreamStatus(ctx, h.AgentID, h.StreamID, ChainGap, fmt.Sprintf("seqs %d..%d missing", from, to-1)); err != nil {
			in.logger.Warn("record gap", "agent", h.AgentID, "stream", h.StreamID, "err", err)
		}
		return r, nil
	case signer.Fork:
		conflict := int64(-1)
		if prev, err := in.store.BatchBySeq(ctx, h.AgentID, h.StreamID, h.Seq); err == nil {
			conflict = int64(prev.LogIndex)
		}
		in.keepEvidence(ctx, "fork", &b, h, remote, res.Reason, conflict)
		if err := in.store.SetStreamStatus(ctx, h.AgentID, h.StreamID, ChainFork, res.Reason); err != nil {
			in.logger.Warn("record fork", "agent", h.AgentID, "stream", h.StreamID, "err", err)
		}
		return r, nil
	case signer.BadSignature, signer.UnknownKey:
		// A batch for an enrolled agent that its expected key did not sign:
		// a forgery, or a stolen key used out of turn.
		in.keepEvidence(ctx, "forgery", &b, h, remote, res.Reason, -1)
		return r, nil
	default:
		return r, nil
	}
}

func (in *Ingester) accept(ctx context.Context, r *Receipt, b *signer.Batch, res *signer.Result, stored Stream, agent Agent, identity crypto.PublicKey) (*Receipt, error) {
	h := &res.Header
	if bl, ok := in.store.(indexBacklogger); ok && bl.IndexBacklog() > in.cfg.MaxIndexBacklog {
		r.Retry, r.Verdict = true, 0
		r.Reason = "central is behind indexing events; retry later"
		return r, fmt.Errorf("accept %s/%s/%d: %w (index backlog)", h.AgentID, h.StreamID, h.Seq, ErrOverloaded)
	}
	record, err := json.Marshal(res.Record)
	if err != nil {
		r.Retry = true
		return r, fmt.Errorf("marshal header record: %w", err)
	}
	state, err := json.Marshal(res.Next)
	if err != nil {
		r.Retry = true
		return r, fmt.Errorf("marshal stream state: %w", err)
	}
	t0 := time.Now()
	events, lastTime := parseEvents(res.Body, res.HeaderDigest, in.metrics)
	t0 = in.metrics.phase("parse", t0)
	idx, err := in.appendLeaf(ctx, b.Envelope)
	t0 = in.metrics.phase("log", t0)
	if err != nil {
		r.Retry = true
		return r, err
	}
	now := time.Now()
	next := Stream{AgentID: h.AgentID, StreamID: h.StreamID, LastSeq: int64(h.Seq), State: state,
		Status: stored.Status, StatusDetail: stored.StatusDetail, StatusSince: stored.StatusSince,
		LastBatchAt: now, LastEventTime: lastTime}
	if next.Status == "" || next.Status == ChainGap {
		// A filled gap heals; a fork stays on record until it is dealt with.
		next.Status, next.StatusDetail, next.StatusSince = ChainOK, "", now
	}
	w := &BatchWrite{
		Batch: Batch{AgentID: h.AgentID, StreamID: h.StreamID, Seq: h.Seq, LogIndex: idx, HeaderHash: res.HeaderDigest[:],
			Record: record, Envelope: b.Envelope, Body: b.Body, Encoding: b.Encoding, Events: h.Events, ReceivedAt: now},
		Events: events,
		Stream: next,
	}
	cres, err := in.store.CommitBatch(ctx, w)
	in.metrics.phase("store", t0)
	if err != nil {
		// The leaf is sequenced but the batch is not stored: the agent
		// resends, and the log's dedup hands back the same index.
		r.Retry = true
		r.Verdict = 0
		r.Reason = "store write failed"
		return r, fmt.Errorf("commit %s/%s/%d: %w", h.AgentID, h.StreamID, h.Seq, err)
	}
	in.leafStored(b.Envelope)
	r.EventsStored = cres.EventsStored
	in.fillLog(ctx, r, idx)
	if in.onStored != nil {
		w.Batch.ID = cres.BatchID
		in.onStored(ctx, w.Batch, w.Events)
	}
	if res.StreamStart {
		in.noteStreamStart(ctx, h)
	}
	return r, nil
}

// noteStreamStart raises an alert when an agent that already had a stream
// starts a new one (a reset after lost state, or a re-install).
func (in *Ingester) noteStreamStart(ctx context.Context, h *signer.Header) {
	streams, err := in.store.Streams(ctx, h.AgentID)
	if err != nil {
		return
	}
	var others []string
	for _, s := range streams {
		if s.StreamID != h.StreamID && s.LastSeq >= 0 {
			others = append(others, fmt.Sprintf("%s (last seq %d)", s.StreamID, s.LastSeq))
		}
	}
	if len(others) == 0 {
		return
	}
	msg := fmt.Sprintf("agent %s started stream %s signed by its identity key; earlier streams: %s", h.AgentID, h.StreamID, strings.Join(others, ", "))
	if h.PrevStream != "" {
		msg += "; header names previous stream " + h.PrevStream
	}
	if err := in.store.AddEvidence(ctx, Evidence{}, Alert{Kind: "stream_reset", Severity: "high", AgentID: h.AgentID, StreamID: h.StreamID, Message: msg}); err != nil {
		in.logger.Warn("raise stream reset alert", "err", err)
	}
	in.notify(ctx, alerts.BuiltinStreamReset, "high", h.AgentID, h.StreamID, h.Seq, msg)
}

// notify sends a built-in alert, already recorded in the store, to the
// alert engine's notifiers.
func (in *Ingester) notify(ctx context.Context, rule, severity, agent, stream string, seq uint64, msg string) {
	if in.raise == nil {
		return
	}
	sum := sha256.Sum256([]byte(msg))
	in.raise(ctx, alerts.Alert{
		ID:   fmt.Sprintf("%s/%s/%s/%d/%x", rule, truncateStr(agent, 64), stream, seq, sum[:8]),
		Rule: rule, Builtin: true, Severity: severity, Time: time.Now(), Summary: msg, Agent: agent,
		Details: map[string]string{"recorded": "central", "stream_id": stream, "seq": fmt.Sprint(seq)},
	})
}

func (in *Ingester) fillLog(ctx context.Context, r *Receipt, idx uint64) {
	r.LogIndex = &idx
	r.ProofPath = fmt.Sprintf("/v1/proofs/index/%d", idx)
	if _, raw, err := in.log.Checkpoint(ctx); err == nil {
		r.Checkpoint = string(raw)
	}
}

func (in *Ingester) keepEvidence(ctx context.Context, kind string, b *signer.Batch, h signer.Header, remote, reason string, conflict int64) {
	in.mu.Lock()
	n := in.evid[h.AgentID]
	if n < in.cfg.MaxEvidencePerAgent {
		in.evid[h.AgentID] = n + 1
	}
	in.mu.Unlock()
	ev := Evidence{Kind: kind, AgentID: h.AgentID, StreamID: h.StreamID, Seq: h.Seq, Reason: reason,
		RemoteAddr: remote, ReceivedAt: time.Now(), ConflictsWith: conflict}
	if n < in.cfg.MaxEvidencePerAgent {
		ev.Envelope, ev.Body = b.Envelope, b.Body
	} else {
		ev.Reason += " (evidence limit reached: batch bytes not kept)"
	}
	msg := fmt.Sprintf("%s: agent %s stream %s seq %d from %s: %s", kind, h.AgentID, h.StreamID, h.Seq, remote, reason)
	if err := in.store.AddEvidence(ctx, ev, Alert{Kind: kind, Severity: "critical", AgentID: h.AgentID, StreamID: h.StreamID, Message: msg}); err != nil {
		in.logger.Error("keep evidence", "kind", kind, "agent", h.AgentID, "err", err)
		return
	}
	in.metrics.alert(kind)
	in.logger.Warn("alert", "kind", kind, "agent", h.AgentID, "stream", h.StreamID, "seq", h.Seq, "reason", reason)
	rule := alerts.BuiltinForgedBatch
	if kind == "fork" {
		rule = alerts.BuiltinFork
	}
	in.notify(ctx, rule, "critical", h.AgentID, h.StreamID, h.Seq, msg)
}

// parseEvents splits a verified NDJSON body into stored events. A line
// that is not an event is still stored (the batch is signed and must stay
// whole) under a synthetic id, and counted as a problem.
func parseEvents(body []byte, header signer.Digest, m *Metrics) ([]StoredEvent, time.Time) {
	var out []StoredEvent
	var last time.Time
	ord := 0
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			i = len(body)
		}
		line := body[:i]
		body = body[min(i+1, len(body)):]
		se := eventFields(line)
		se.Ord = ord
		if se.EventID == "" {
			m.badEvent()
			se.EventID = "unparsed:" + hex.EncodeToString(header[:8]) + ":" + fmt.Sprint(ord)
		}
		if se.Time.After(last) {
			last = se.Time
		}
		out = append(out, se)
		ord++
	}
	return out, last
}

// eventFields extracts the indexed fields of one event line, and its
// entitlement changes (without log index); EventID is empty when the line
// is not a usable event.
func eventFields(line []byte) StoredEvent {
	se := StoredEvent{JSON: line, parsed: true}
	p, ok := decodeEventLine(line)
	if !ok || p.ID == "" || len(p.ID) > 128 {
		return se
	}
	se.EventID = p.ID
	se.Time = p.Time.UTC()
	se.Action, se.Outcome = p.Action, p.Outcome
	se.Actor = firstNonEmpty(p.ActorName, p.ActorID)
	if u := p.User; u != nil {
		se.User = firstNonEmpty(u.Name, u.ID)
	}
	if g := p.Group; g != nil {
		se.Group = firstNonEmpty(g.Name, g.ID)
	}
	names := &eventNames{actor: p.ActorName}
	if p.User != nil {
		names.user = p.User.Name
	}
	if p.Group != nil {
		names.group = p.Group.Name
	}
	se.names = names
	se.Privileges = strings.Join(p.Privileges, "\n")
	se.System, se.Host = p.System, p.Host
	// An event whose entitlement fields do not decode changes no
	// entitlement (as one that is not an event).
	if entitlementActions[se.Action] && p.extrasOK {
		se.ents = entitlements.Changes(p.event(), 0)
	}
	return se
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func truncateStr(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// DecodeEvent parses a stored event's JSON.
func DecodeEvent(e StoredEvent) (event.Event, error) {
	var ev event.Event
	if err := json.Unmarshal(e.JSON, &ev); err != nil {
		return event.Event{}, fmt.Errorf("event %s: %w", e.EventID, err)
	}
	return ev, nil
}
