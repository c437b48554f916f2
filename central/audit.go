package central

import (
	"bytes"
	"context"
	"crypto"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"

	"github.com/provtrail/provtrail/signer"
)

// AuditSource is what an audit reads: the log's public resources, the
// stored batches by log index, and the agents' enrolled keys.
type AuditSource interface {
	fsck.Fetcher
	BatchAt(ctx context.Context, index uint64) (Batch, error)
	// BatchesAfter lists stored batches with log index >= from, in order
	// (batches logged after the checkpoint being audited).
	BatchesAfter(ctx context.Context, from uint64, fn func(Batch) error) error
	AgentKey(ctx context.Context, agentID string) (crypto.PublicKey, error)
}

// AuditConfig configures an audit.
type AuditConfig struct {
	Source   AuditSource
	Origin   string
	Verifier note.Verifier
	// Audience is the central's audience; empty takes it from the first
	// logged header (and then requires every header to match).
	Audience string
	// Store, when set (offline audit of a data_dir), also checks every
	// stored event row against its batch body.
	Store *SQLite
	// Previous is an earlier checkpoint this auditor saw; the audited one
	// must be consistent with it.
	Previous []byte
	// Inclusion lists log indexes (from agents' receipts) whose inclusion
	// in the audited checkpoint is proven with an RFC 6962 inclusion proof
	// built from the log's tiles.
	Inclusion []uint64
	// Progress is called now and then during long audits.
	Progress func(AuditProgress)
}

// AuditProgress reports how far an audit has got.
type AuditProgress struct {
	Leaves, TreeSize uint64
	Batches, Events  int
}

// AuditReport is what an audit checked and found. Problems are failures,
// each with its exact reason; Notes are worth knowing but not failures.
type AuditReport struct {
	Checkpoint  []byte
	TreeSize    uint64
	Leaves      uint64
	Batches     int
	Unpublished int // stored batches newer than the checkpoint (checked, not yet provable)
	Events      int
	// IndexRows is how many rows of the query index (postings) were
	// recomputed from the stored events and found equal.
	IndexRows  int
	Streams    int
	Consistent bool // consistency with Previous was proven
	// Included lists the Inclusion indexes proven, with the batch each is.
	Included       []string
	Problems       []string
	Notes          []string
	problemsCapped bool
}

// OK reports whether the audit found no problem.
func (r *AuditReport) OK() bool { return len(r.Problems) == 0 }

const maxProblems = 200

func (r *AuditReport) fail(format string, args ...any) {
	if len(r.Problems) >= maxProblems {
		r.problemsCapped = true
		return
	}
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

type auditStream struct {
	state signer.StreamState
}

type auditor struct {
	cfg      AuditConfig
	rep      *AuditReport
	verifier *signer.Verifier
	streams  map[string]*auditStream
	leafSeen map[[32]byte]uint64
	aud      string
	lastProg time.Time
	// indexedThrough is the store's index watermark: later batches' events
	// are not queryable yet and are not compared.
	indexedThrough int64
	unindexed      int
}

// Audit checks a central's log and store: the checkpoint signature,
// consistency with a previous checkpoint, every tile and entry bundle (the
// root recomputed from all leaves), every logged header's signature and
// chain per agent stream, every stored body against its header, and (with
// Store) every stored event against its body. It returns an error only when
// it could not run; what it found is in the report.
func Audit(ctx context.Context, cfg AuditConfig) (*AuditReport, error) {
	rep := &AuditReport{}
	raw, err := cfg.Source.ReadCheckpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	rep.Checkpoint = raw
	cp, _, _, err := log.ParseCheckpoint(raw, cfg.Origin, cfg.Verifier)
	if err != nil {
		rep.fail("checkpoint: signature or format invalid for log %q: %v", cfg.Origin, err)
		return rep, nil
	}
	rep.TreeSize = cp.Size
	if len(cfg.Previous) > 0 {
		checkPrevious(ctx, cfg, cp, rep)
	}
	for _, idx := range cfg.Inclusion {
		checkInclusion(ctx, cfg, cp, idx, rep)
	}
	a := &auditor{cfg: cfg, rep: rep, streams: map[string]*auditStream{}, leafSeen: map[[32]byte]uint64{}, aud: cfg.Audience}
	if cfg.Store != nil {
		if a.indexedThrough, err = cfg.Store.IndexedThrough(ctx); err != nil {
			return nil, err
		}
	}
	// The fetcher pins the checkpoint read above, so fsck checks the same
	// tree size the chain pass walks.
	pinned := pinnedFetcher{Fetcher: cfg.Source, cp: raw}
	var idx uint64
	var chainErr error
	hasher := func(bundle []byte) ([][]byte, error) {
		eb := &api.EntryBundle{}
		if err := eb.UnmarshalText(bundle); err != nil {
			return nil, fmt.Errorf("entry bundle: %w", err)
		}
		hs := make([][]byte, 0, len(eb.Entries))
		for _, e := range eb.Entries {
			hs = append(hs, rfc6962.DefaultHasher.HashLeaf(e))
			if idx < cp.Size && chainErr == nil {
				chainErr = a.leaf(ctx, idx, e)
				rep.Leaves++
			}
			idx++
		}
		a.progress()
		return hs, nil
	}
	if err := fsck.New(cfg.Origin, cfg.Verifier, pinned, hasher, fsck.Opts{N: 2}).Check(ctx); err != nil {
		rep.fail("log tiles: %v", err)
	}
	if chainErr != nil {
		return rep, chainErr
	}
	if rep.Leaves < cp.Size {
		rep.fail("log: checkpoint commits to %d leaves, only %d could be read", cp.Size, rep.Leaves)
	}
	// Batches stored after the checkpoint: check their chain and bodies too.
	err = cfg.Source.BatchesAfter(ctx, cp.Size, func(b Batch) error {
		rep.Unpublished++
		a.batch(ctx, b.LogIndex, b, b.Envelope)
		a.progress()
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("list unpublished batches: %w", err)
	}
	if rep.Unpublished > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d stored batches are newer than the checkpoint (size %d): chain and bodies checked, inclusion not yet provable", rep.Unpublished, cp.Size))
	}
	rep.Streams = len(a.streams)
	if cfg.Store != nil {
		a.checkOrphanEvents(ctx)
		if a.unindexed > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d batches are stored but their events not yet indexed (central is catching up): their events were checked against their digests, not against index rows", a.unindexed))
		}
	}
	if rep.problemsCapped {
		rep.Problems = append(rep.Problems, fmt.Sprintf("(more problems not listed: stopped at %d)", maxProblems))
	}
	return rep, nil
}

func checkPrevious(ctx context.Context, cfg AuditConfig, cp *log.Checkpoint, rep *AuditReport) {
	prev, _, _, err := log.ParseCheckpoint(cfg.Previous, cfg.Origin, cfg.Verifier)
	if err != nil {
		rep.fail("previous checkpoint: does not verify under the log key: %v", err)
		return
	}
	if prev.Size > cp.Size {
		rep.fail("consistency: previous checkpoint has size %d, current only %d: the log shrank", prev.Size, cp.Size)
		return
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, cfg.Source.ReadTile)
	if err != nil {
		rep.fail("consistency: %v", err)
		return
	}
	p, err := pb.ConsistencyProof(ctx, prev.Size, cp.Size)
	if err != nil {
		rep.fail("consistency: cannot build proof %d..%d: %v", prev.Size, cp.Size, err)
		return
	}
	if err := VerifyConsistency(prev, cp, p); err != nil {
		rep.fail("consistency: the current checkpoint does not extend the previous one (%v): the log was rewritten", err)
		return
	}
	rep.Consistent = true
}

func checkInclusion(ctx context.Context, cfg AuditConfig, cp *log.Checkpoint, idx uint64, rep *AuditReport) {
	if idx >= cp.Size {
		rep.fail("inclusion of log index %d: the checkpoint covers only %d leaves", idx, cp.Size)
		return
	}
	b, err := cfg.Source.BatchAt(ctx, idx)
	if err != nil {
		rep.fail("inclusion of log index %d: stored batch: %v", idx, err)
		return
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, cfg.Source.ReadTile)
	if err != nil {
		rep.fail("inclusion of log index %d: %v", idx, err)
		return
	}
	p, err := pb.InclusionProof(ctx, idx)
	if err != nil {
		rep.fail("inclusion of log index %d: cannot build proof: %v", idx, err)
		return
	}
	if err := VerifyInclusion(cp, idx, b.Envelope, p); err != nil {
		rep.fail("inclusion of log index %d: the stored header is not the logged leaf: %v", idx, err)
		return
	}
	rep.Included = append(rep.Included, fmt.Sprintf("log index %d (%s)", idx, describeLeaf(b.Envelope)))
}

func (a *auditor) progress() {
	if a.cfg.Progress == nil || time.Since(a.lastProg) < 500*time.Millisecond {
		return
	}
	a.lastProg = time.Now()
	a.cfg.Progress(AuditProgress{Leaves: a.rep.Leaves, TreeSize: a.rep.TreeSize, Batches: a.rep.Batches, Events: a.rep.Events})
}

// leaf checks log leaf idx against the stored batch. Only an error that
// stops the audit is returned.
func (a *auditor) leaf(ctx context.Context, idx uint64, leaf []byte) error {
	key := [32]byte(rfc6962.DefaultHasher.HashLeaf(leaf))
	if first, dup := a.leafSeen[key]; dup {
		a.rep.Notes = append(a.rep.Notes, fmt.Sprintf("log leaf %d repeats leaf %d (a batch re-logged after a crash between log and store)", idx, first))
		return nil
	}
	a.leafSeen[key] = idx
	b, err := a.cfg.Source.BatchAt(ctx, idx)
	if errors.Is(err, ErrNotFound) {
		h := describeLeaf(leaf)
		a.rep.fail("log leaf %d (%s): no stored batch has this log index", idx, h)
		return nil
	}
	if err != nil {
		return fmt.Errorf("read batch at log index %d: %w", idx, err)
	}
	if !bytes.Equal(b.Envelope, leaf) {
		a.rep.fail("log leaf %d: the stored batch's header envelope differs from the logged one", idx)
	}
	a.batch(ctx, idx, b, leaf)
	return nil
}

func describeLeaf(leaf []byte) string {
	h, err := leafHeader(leaf)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("agent %s stream %s seq %d", h.AgentID, h.StreamID, h.Seq)
}

// leafHeader decodes (without verifying) the header of a logged envelope.
func leafHeader(leaf []byte) (signer.Header, error) {
	var env signer.Envelope
	if err := json.Unmarshal(leaf, &env); err != nil {
		return signer.Header{}, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	h, err := signer.ParseHeader(env.Payload)
	if err != nil {
		return signer.Header{}, fmt.Errorf("unparsable header: %w", err)
	}
	return h, nil
}

// batch verifies one batch (logged header = leaf) against its stream's
// chain and its body, and, with a store, its event rows.
func (a *auditor) batch(ctx context.Context, idx uint64, b Batch, leaf []byte) {
	a.rep.Batches++
	env := leaf
	hdr, err := leafHeader(env)
	if err != nil {
		a.rep.fail("log leaf %d: header: %v", idx, err)
		return
	}
	where := fmt.Sprintf("log leaf %d (agent %s stream %s seq %d)", idx, hdr.AgentID, hdr.StreamID, hdr.Seq)
	if a.aud == "" {
		a.aud = hdr.Audience
	}
	if a.verifier == nil {
		v, err := signer.NewVerifier(signer.VerifierConfig{Audience: a.aud, Limits: signer.Limits{MaxBody: 1 << 40, MaxDecompressed: 1 << 40, MaxEvents: 1 << 30}})
		if err != nil {
			a.rep.fail("%s: %v", where, err)
			return
		}
		a.verifier = v
	}
	if b.AgentID != hdr.AgentID || b.StreamID != hdr.StreamID || b.Seq != hdr.Seq {
		a.rep.fail("%s: stored batch row says agent %s stream %s seq %d", where, b.AgentID, b.StreamID, b.Seq)
	}
	key := hdr.AgentID + "\x00" + hdr.StreamID
	st := a.streams[key]
	if st == nil {
		pub, err := a.cfg.Source.AgentKey(ctx, hdr.AgentID)
		if err != nil {
			a.rep.fail("%s: agent's enrolled key: %v", where, err)
			return
		}
		s0, err := signer.NewStreamState(hdr.AgentID, pub)
		if err != nil {
			a.rep.fail("%s: agent's enrolled key: %v", where, err)
			return
		}
		st = &auditStream{state: s0}
		a.streams[key] = st
	}
	res, err := a.verifier.Verify(ctx, st.state, signer.Batch{Envelope: env, Body: b.Body, Encoding: hdr.BodyEncoding})
	if err != nil {
		a.rep.fail("%s: cannot verify: %v", where, err)
		return
	}
	if res.Verdict != signer.Accepted {
		a.rep.fail("%s: %s: %s", where, res.Verdict, res.Reason)
		// Continue the chain from this header as logged, so that later
		// batches are judged on their own rather than all as gaps.
		if res.Header.StreamID != "" {
			st.state = signer.StreamState{AgentID: st.state.AgentID, IdentityKey: st.state.IdentityKey, StreamID: res.Header.StreamID,
				NextSeq: res.Header.Seq + 1, LastDigest: res.HeaderDigest, NextKey: res.Header.NextPub, LastCreated: res.Header.Created}
		}
		return
	}
	st.state = res.Next
	if a.cfg.Store != nil {
		if b.ID > a.indexedThrough {
			a.unindexed++
			return
		}
		a.checkEvents(ctx, where, b, res.Body, res.HeaderDigest)
	}
}

// checkEvents compares a batch's stored event rows with its verified body.
func (a *auditor) checkEvents(ctx context.Context, where string, b Batch, body []byte, digest signer.Digest) {
	rows, err := a.cfg.Store.BatchEvents(ctx, b.ID)
	if err != nil {
		a.rep.fail("%s: read stored events: %v", where, err)
		return
	}
	want, _ := parseEvents(body, digest, nil)
	byOrd := make(map[int]StoredEvent, len(rows))
	for _, r := range rows {
		if _, dup := byOrd[r.Ord]; dup || r.BatchID != b.ID || r.Ord < 0 || r.Ord >= len(want) {
			a.rep.fail("%s: stored event row %d (%s) is not a line of the batch body", where, r.RowID, r.EventID)
			continue
		}
		byOrd[r.Ord] = r
	}
	for _, w := range want {
		got, ok := byOrd[w.Ord]
		if !ok {
			// Skipped at ingest because the id was already stored: the
			// earlier row must exist.
			if _, err := a.cfg.Store.EventByID(ctx, w.EventID); err != nil {
				a.rep.fail("%s: event %d (%s) of the body is missing from the store", where, w.Ord, w.EventID)
			}
			continue
		}
		a.rep.Events++
		if diff := eventRowDiff(got, w); diff != "" {
			a.rep.fail("%s: stored event %s (line %d) differs from the signed body: %s", where, got.EventID, w.Ord, diff)
		}
	}
}

func eventRowDiff(got, want StoredEvent) string {
	var d []string
	cmp := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s %q, body has %q", name, truncateStr(g, 60), truncateStr(w, 60)))
		}
	}
	if !bytes.Equal(got.JSON, want.JSON) {
		d = append(d, "json "+firstDiff(got.JSON, want.JSON))
	}
	cmp("id", got.EventID, want.EventID)
	cmp("action", got.Action, want.Action)
	cmp("outcome", got.Outcome, want.Outcome)
	cmp("actor", got.Actor, want.Actor)
	cmp("user", got.User, want.User)
	cmp("group", got.Group, want.Group)
	cmp("privileges", got.Privileges, want.Privileges)
	cmp("system", got.System, want.System)
	cmp("host", got.Host, want.Host)
	if !got.Time.Equal(want.Time) {
		d = append(d, fmt.Sprintf("time %s, body has %s", got.Time.Format(time.RFC3339Nano), want.Time.Format(time.RFC3339Nano)))
	}
	return strings.Join(d, "; ")
}

// firstDiff describes where two byte strings first differ.
func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(i-20, 0)
	return fmt.Sprintf("at byte %d: stored %q, body has %q", i, got[from:min(i+20, len(got))], want[from:min(i+20, len(want))])
}

// checkOrphanEvents fails on event rows the batch pass did not account for
// (rows inserted into the store that no signed body holds).
func (a *auditor) checkOrphanEvents(ctx context.Context) {
	st := a.cfg.Store
	var n int
	if err := st.ev.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE batch_id <= ?`, a.indexedThrough).Scan(&n); err != nil {
		a.rep.fail("count stored events: %v", err)
		return
	}
	if n != a.rep.Events {
		a.rep.fail("store holds %d event rows, the signed batch bodies account for %d", n, a.rep.Events)
	}
	// Event rows name their batch; the batches are in the store file.
	orphans := 0
	rows, err := st.ev.db.QueryContext(ctx, `SELECT batch_id, COUNT(*) FROM events GROUP BY batch_id`)
	if err != nil {
		a.rep.fail("scan stored events: %v", err)
		return
	}
	counts := map[int64]int{}
	for rows.Next() {
		var batch int64
		var n int
		if err := rows.Scan(&batch, &n); err != nil {
			a.rep.fail("scan stored events: %v", err)
			break
		}
		counts[batch] = n
	}
	rows.Close()
	for batch, n := range counts {
		var one int
		switch err := st.db.QueryRowContext(ctx, `SELECT 1 FROM batches WHERE id = ?`, batch).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			orphans += n
		case err != nil:
			a.rep.fail("scan stored events: %v", err)
		}
	}
	if orphans > 0 {
		a.rep.fail("store holds %d event rows that belong to no stored batch", orphans)
	}
	indexRows, err := st.checkPostings(ctx, a.rep.fail)
	if err != nil {
		a.rep.fail("query index: %v", err)
	}
	a.rep.IndexRows = indexRows
	// Rows and the events file's watermark are written in one
	// transaction, so no row can belong to a batch past the watermark.
	var ahead int
	if err := st.ev.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE batch_id > (SELECT through_batch FROM index_state WHERE id = 1)`).Scan(&ahead); err == nil && ahead > 0 {
		a.rep.fail("store holds %d event rows for batches past the index watermark", ahead)
	}
}

type pinnedFetcher struct {
	fsck.Fetcher
	cp []byte
}

func (p pinnedFetcher) ReadCheckpoint(context.Context) ([]byte, error) { return p.cp, nil }

// StoreSource audits a local data_dir: the log's files and the SQLite
// store.
type StoreSource struct {
	client.FileFetcher
	Store *SQLite
}

// NewStoreSource returns the audit source for central's data_dir.
func NewStoreSource(dataDir string, store *SQLite) *StoreSource {
	return &StoreSource{FileFetcher: client.FileFetcher{Root: dataDir + "/" + LogDir}, Store: store}
}

// BatchAt returns the stored batch at a log index.
func (s *StoreSource) BatchAt(ctx context.Context, index uint64) (Batch, error) {
	return s.Store.BatchByLogIndex(ctx, index)
}

// BatchesAfter lists stored batches from log index from on.
func (s *StoreSource) BatchesAfter(ctx context.Context, from uint64, fn func(Batch) error) error {
	return s.Store.ForEachBatch(ctx, func(b Batch) error {
		if b.LogIndex < from {
			return nil
		}
		return fn(b)
	})
}

// AgentKey returns the agent's enrolled identity key.
func (s *StoreSource) AgentKey(ctx context.Context, id string) (crypto.PublicKey, error) {
	a, err := s.Store.Agent(ctx, id)
	if err != nil {
		return nil, err
	}
	return signer.ParsePublicKeyPEM(a.PublicKey)
}

// HTTPSource audits a running central through its public API.
type HTTPSource struct {
	*client.HTTPFetcher
	base   *url.URL
	client *http.Client

	mu   sync.Mutex
	keys map[string]crypto.PublicKey
}

// NewHTTPSource returns the audit source for the central at base (e.g.
// https://central:7443/).
func NewHTTPSource(base string, c *http.Client) (*HTTPSource, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/") + "/")
	if err != nil {
		return nil, fmt.Errorf("central URL: %w", err)
	}
	f, err := client.NewHTTPFetcher(u.JoinPath("v1", "log", "/"), c)
	if err != nil {
		return nil, err
	}
	return &HTTPSource{HTTPFetcher: f, base: u, client: c}, nil
}

func (s *HTTPSource) get(ctx context.Context, p string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base.JoinPath(p).String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("GET %s: %w", p, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", p, resp.Status, truncateStr(string(body), 200))
	}
	return json.Unmarshal(body, v)
}

// BatchAt fetches the stored batch at a log index.
func (s *HTTPSource) BatchAt(ctx context.Context, index uint64) (Batch, error) {
	var sb StoredBatch
	if err := s.get(ctx, fmt.Sprintf("v1/batches/index/%d", index), &sb); err != nil {
		return Batch{}, err
	}
	return Batch{AgentID: sb.AgentID, StreamID: sb.StreamID, Seq: sb.Seq, LogIndex: sb.LogIndex, Envelope: sb.Envelope, Body: sb.Body, ReceivedAt: sb.ReceivedAt}, nil
}

// BatchesAfter fetches batches from log index from until the first gap.
func (s *HTTPSource) BatchesAfter(ctx context.Context, from uint64, fn func(Batch) error) error {
	for i := from; ; i++ {
		b, err := s.BatchAt(ctx, i)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}

// AgentKey returns the agent's enrolled key as central lists it.
func (s *HTTPSource) AgentKey(ctx context.Context, id string) (crypto.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		var resp struct {
			Agents []AgentView `json:"agents"`
		}
		if err := s.get(ctx, "v1/agents", &resp); err != nil {
			return nil, err
		}
		s.keys = map[string]crypto.PublicKey{}
		for _, a := range resp.Agents {
			if pub, err := signer.ParsePublicKeyPEM([]byte(a.PublicKey)); err == nil {
				s.keys[a.ID] = pub
			}
		}
	}
	pub, ok := s.keys[id]
	if !ok {
		return nil, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	return pub, nil
}
