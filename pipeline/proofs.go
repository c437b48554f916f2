package pipeline

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/provtrail/provtrail/internal/atomicfile"
	"github.com/provtrail/provtrail/signer"
)

const (
	// DefaultProofInterval is how often the Prover asks central for proofs.
	DefaultProofInterval = 30 * time.Second
	// maxProofBody bounds one proof or checkpoint answer from central.
	maxProofBody = 1 << 20
	// maxProofQueue bounds the receipts waiting for a proof in memory;
	// beyond it the Prover reads them again from the receipts files.
	maxProofQueue = 4096
	// proofsPerRound bounds the proofs fetched in one round.
	proofsPerRound = 1024
)

// ProverConfig configures a Prover.
type ProverConfig struct {
	// URL is central's base URL (forward.url).
	URL    string
	Client *http.Client
	// AgentID is this agent's id: the proofs are fetched by agent, stream
	// and seq, and the logged header must name this agent.
	AgentID string
	// StateDir holds receipts/ (the Forwarder's receipts, and the proofs).
	StateDir string
	// LogKey is the log's checkpoint key, a C2SP note verifier key
	// ("origin+hash+key", central's DATA_DIR/log/log.vkey). The agent holds
	// its own copy: a key taken from the log would prove nothing.
	LogKey   string
	Interval time.Duration
	Metrics  *Metrics
	Logger   *slog.Logger
}

// Prover fetches, for every batch central acknowledged, the proof that its
// header is in central's transparency log, and checks that every checkpoint
// central shows this agent extends the previous one. Verified proofs are
// appended to state_dir/receipts/proofs.ndjson; its state (the newest
// verified checkpoint and, per stream, the last proven seq) is
// state_dir/receipts/proofs.json.
//
// A failed check is evidence that central's log was rewritten or that it
// answers with proofs for something else: it is logged as an error,
// counted, and the Prover does not move past it, so the receipt stays
// unproven until central serves a proof that holds.
type Prover struct {
	cfg      ProverConfig
	verifier note.Verifier
	origin   string
	log      *slog.Logger
	m        *Metrics

	st proverState
	// cp is st.Checkpoint parsed (nil when there is none).
	cp      *log.Checkpoint
	queue   []Receipt
	rescan  bool
	wake    chan struct{}
	pending chan Receipt
}

// proverState is proofs.json.
type proverState struct {
	// Checkpoint is the newest verified checkpoint (signed note text).
	Checkpoint string `json:"checkpoint,omitempty"`
	// Proven is, per stream, the highest seq whose proof was verified.
	Proven map[string]uint64 `json:"proven"`
}

// ProofRecord is one line of proofs.ndjson.
type ProofRecord struct {
	Stream   string    `json:"stream_id"`
	Seq      uint64    `json:"seq"`
	LogIndex uint64    `json:"log_index"`
	TreeSize uint64    `json:"tree_size"`
	Header   string    `json:"header_sha256"`
	Verified time.Time `json:"verified"`
	// TLogProof is the proof with its checkpoint, as c2sp.org/tlog-proof@v1
	// text: anyone holding the log key can check it offline.
	TLogProof string `json:"tlog_proof"`
}

// centralProof is central's answer to GET /v1/proofs/... (central.Proof).
type centralProof struct {
	Index      uint64   `json:"index"`
	TreeSize   uint64   `json:"tree_size"`
	Hashes     [][]byte `json:"hashes"`
	Checkpoint string   `json:"checkpoint"`
	Leaf       []byte   `json:"leaf"`
	TLogProof  string   `json:"tlog_proof"`
}

// errNotYet says central has not published a checkpoint covering a batch.
var errNotYet = errors.New("not covered by a published checkpoint yet")

// NewProver loads the Prover's state and queues the receipts not proven
// yet.
func NewProver(cfg ProverConfig) (*Prover, error) {
	if cfg.URL == "" || cfg.Client == nil || cfg.StateDir == "" || cfg.AgentID == "" {
		return nil, errors.New("prover: URL, Client, AgentID and StateDir are required")
	}
	v, err := note.NewVerifier(strings.TrimSpace(cfg.LogKey))
	if err != nil {
		return nil, fmt.Errorf("prover: log key: %w", err)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultProofInterval
	}
	p := &Prover{cfg: cfg, verifier: v, origin: v.Name(), log: cfg.Logger, m: cfg.Metrics,
		wake: make(chan struct{}, 1), pending: make(chan Receipt, maxProofQueue)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.m == nil {
		p.m = NewMetrics(prometheus.NewRegistry())
	}
	if err := os.MkdirAll(p.dir(), 0o700); err != nil {
		return nil, fmt.Errorf("prover: %w", err)
	}
	b, err := os.ReadFile(p.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("prover: %w", err)
	default:
		if err := json.Unmarshal(b, &p.st); err != nil {
			return nil, fmt.Errorf("prover: %s: %w", p.statePath(), err)
		}
	}
	if p.st.Proven == nil {
		p.st.Proven = map[string]uint64{}
	}
	if p.st.Checkpoint != "" {
		if p.cp, _, _, err = log.ParseCheckpoint([]byte(p.st.Checkpoint), p.origin, p.verifier); err != nil {
			return nil, fmt.Errorf("prover: the saved checkpoint does not verify under the configured log key (was the key changed?): %w", err)
		}
	}
	p.rescan = true
	return p, nil
}

func (p *Prover) dir() string       { return filepath.Join(p.cfg.StateDir, "receipts") }
func (p *Prover) statePath() string { return filepath.Join(p.dir(), "proofs.json") }

// Add queues an acknowledged batch's receipt for a proof. It never blocks:
// when the queue is full the receipt is found again in the receipts file.
func (p *Prover) Add(r Receipt) {
	if r.Seq == nil || r.Stream == "" || !provable(r.Verdict) {
		return
	}
	select {
	case p.pending <- r:
	default:
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// Run fetches and checks proofs every Interval until ctx is done.
func (p *Prover) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if err := p.round(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("inclusion proofs: will retry", "err", err, "retry_in", p.cfg.Interval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.wake:
		}
	}
}

// round takes the queued receipts, brings the checkpoint up to date and
// proves as many receipts as central's checkpoint covers, in order.
func (p *Prover) round(ctx context.Context) error {
	p.takePending()
	if p.rescan && len(p.queue) < maxProofQueue {
		if err := p.readReceipts(); err != nil {
			return err
		}
	}
	p.m.ProofBacklog.Set(float64(len(p.queue)))
	if len(p.queue) == 0 {
		return nil
	}
	if err := p.updateCheckpoint(ctx); err != nil {
		return err
	}
	var out bytes.Buffer
	done := 0
	var err error
	for done < len(p.queue) && done < proofsPerRound {
		r := p.queue[done]
		if pv, ok := p.st.Proven[r.Stream]; ok && *r.Seq <= pv {
			done++
			continue
		}
		var rec ProofRecord
		if rec, err = p.prove(ctx, r); err != nil {
			break
		}
		b, _ := json.Marshal(rec) // plain struct
		out.Write(append(b, '\n'))
		p.st.Proven[r.Stream] = *r.Seq
		p.m.ProofsVerified.Inc()
		done++
	}
	if out.Len() > 0 {
		if werr := p.save(out.Bytes()); werr != nil {
			return werr
		}
	}
	p.queue = p.queue[done:]
	p.m.ProofBacklog.Set(float64(len(p.queue)))
	if errors.Is(err, errNotYet) {
		return nil
	}
	return err
}

func (p *Prover) takePending() {
	for {
		select {
		case r := <-p.pending:
			if len(p.queue) < maxProofQueue {
				p.queue = append(p.queue, r)
			} else {
				p.rescan = true
			}
		default:
			return
		}
	}
}

// readReceipts queues, from the receipts files, the receipts not proven
// yet, oldest first, up to the queue bound.
func (p *Prover) readReceipts() error {
	queued := map[string]uint64{}
	for _, r := range p.queue {
		queued[r.Stream] = max(queued[r.Stream], *r.Seq)
	}
	var found []Receipt
	more := false
	base := filepath.Join(p.dir(), "receipts.ndjson")
	for _, name := range []string{base + ".1", base} {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read receipts: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), maxReceiptBytes*2)
		for sc.Scan() {
			var r Receipt
			if json.Unmarshal(sc.Bytes(), &r) != nil || r.Seq == nil || r.Stream == "" || !provable(r.Verdict) {
				continue
			}
			if proven, ok := p.st.Proven[r.Stream]; ok && *r.Seq <= proven {
				continue
			}
			if q, ok := queued[r.Stream]; ok && *r.Seq <= q {
				continue
			}
			if len(p.queue)+len(found) >= maxProofQueue {
				more = true
				break
			}
			found = append(found, r)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return fmt.Errorf("read receipts %s: %w", name, err)
		}
	}
	// Each stream's receipts in seq order, once: the per-stream watermark
	// must not pass a receipt not proven yet.
	q := append(found, p.queue...)
	slices.SortStableFunc(q, func(a, b Receipt) int {
		return cmp.Or(strings.Compare(a.Stream, b.Stream), cmp.Compare(*a.Seq, *b.Seq))
	})
	p.queue = slices.CompactFunc(q, func(a, b Receipt) bool { return a.Stream == b.Stream && *a.Seq == *b.Seq })
	p.rescan = more
	return nil
}

// provable says whether a receipt's batch is in central's log. A batch
// answered as a gap was not logged (the forwarder re-signs it into a new
// stream), nor was a resealed or unreadable one.
func provable(verdict string) bool {
	return verdict == "accepted" || verdict == "duplicate"
}

// updateCheckpoint fetches central's checkpoint and moves to it if it
// verifies and extends the newest one held.
func (p *Prover) updateCheckpoint(ctx context.Context) error {
	raw, status, err := p.get(ctx, "/v1/checkpoint")
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET /v1/checkpoint: status %d: %s", status, truncate(raw))
	}
	_, err = p.advance(ctx, raw)
	return err
}

// advance checks the signed checkpoint raw against the key and against the
// newest checkpoint held, and makes it the newest if it is larger. It
// returns the parsed checkpoint.
func (p *Prover) advance(ctx context.Context, raw []byte) (*log.Checkpoint, error) {
	if p.cp != nil && string(raw) == p.st.Checkpoint {
		return p.cp, nil // the one held, already checked
	}
	cp, _, _, err := log.ParseCheckpoint(raw, p.origin, p.verifier)
	if err != nil {
		return nil, p.fail("checkpoint", "central's checkpoint does not verify under the log key", err)
	}
	prev := p.cp
	switch {
	case prev == nil:
	case cp.Size < prev.Size:
		// An older checkpoint (a lagging replica or cache) is checked
		// against the newer one, which stays.
		if err := p.consistent(ctx, cp, prev); err != nil {
			return nil, err
		}
		return cp, nil
	case cp.Size == prev.Size:
		if !bytes.Equal(cp.Hash, prev.Hash) {
			return nil, p.fail("consistency", fmt.Sprintf("two checkpoints of tree size %d with different roots: the log was forked or rewritten", cp.Size), nil)
		}
		return cp, nil
	default:
		if err := p.consistent(ctx, prev, cp); err != nil {
			return nil, err
		}
	}
	p.st.Checkpoint, p.cp = string(raw), cp
	p.m.LogTreeSize.Set(float64(cp.Size))
	return cp, nil
}

// consistent checks, with a proof from central, that the tree of b
// extends the tree of a.
func (p *Prover) consistent(ctx context.Context, a, b *log.Checkpoint) error {
	if a.Size == 0 {
		return nil
	}
	body, status, err := p.get(ctx, fmt.Sprintf("/v1/consistency?from=%d&to=%d", a.Size, b.Size))
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("consistency %d..%d: status %d: %s", a.Size, b.Size, status, truncate(body))
	}
	var cp struct {
		Hashes [][]byte `json:"hashes"`
	}
	if err := json.Unmarshal(body, &cp); err != nil {
		return fmt.Errorf("consistency %d..%d: %w", a.Size, b.Size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, a.Size, b.Size, cp.Hashes, a.Hash, b.Hash); err != nil {
		return p.fail("consistency", fmt.Sprintf("the log of tree size %d does not extend the one of size %d this agent saw before: it was rewritten", b.Size, a.Size), err)
	}
	return nil
}

// prove fetches and checks the proof for one receipt's batch.
func (p *Prover) prove(ctx context.Context, r Receipt) (ProofRecord, error) {
	path := fmt.Sprintf("/v1/proofs/agents/%s/streams/%s/seqs/%d", p.cfg.AgentID, r.Stream, *r.Seq)
	body, status, err := p.get(ctx, path)
	if err != nil {
		return ProofRecord{}, err
	}
	switch {
	case status == http.StatusTooEarly:
		return ProofRecord{}, errNotYet
	case status == http.StatusNotFound:
		return ProofRecord{}, p.fail("missing", fmt.Sprintf("central acknowledged stream %s seq %d but has no such batch", r.Stream, *r.Seq), nil)
	case status != http.StatusOK:
		return ProofRecord{}, fmt.Errorf("GET %s: status %d: %s", path, status, truncate(body))
	}
	var cp centralProof
	if err := json.Unmarshal(body, &cp); err != nil {
		return ProofRecord{}, fmt.Errorf("GET %s: %w", path, err)
	}
	// The leaf must be this batch's header, as this agent signed it.
	h, digest, err := leafHeader(cp.Leaf)
	if err != nil {
		return ProofRecord{}, p.fail("leaf", fmt.Sprintf("central's proof for stream %s seq %d names a leaf that is not a batch header", r.Stream, *r.Seq), err)
	}
	if h.AgentID != p.cfg.AgentID || h.StreamID != r.Stream || h.Seq != *r.Seq || (r.HeaderSHA256 != "" && digest.String() != r.HeaderSHA256) {
		return ProofRecord{}, p.fail("leaf", fmt.Sprintf("central's proof for stream %s seq %d is for another header (%s/%s seq %d, sha256 %s; this agent sent sha256 %s)",
			r.Stream, *r.Seq, h.AgentID, h.StreamID, h.Seq, digest, r.HeaderSHA256), nil)
	}
	if r.LogIndex != nil && *r.LogIndex != cp.Index {
		return ProofRecord{}, p.fail("leaf", fmt.Sprintf("central acknowledged stream %s seq %d at log index %d but proves it at %d", r.Stream, *r.Seq, *r.LogIndex, cp.Index), nil)
	}
	tree, err := p.advance(ctx, []byte(cp.Checkpoint))
	if err != nil {
		return ProofRecord{}, err
	}
	if tree.Size != cp.TreeSize || cp.Index >= tree.Size {
		return ProofRecord{}, p.fail("inclusion", fmt.Sprintf("proof for log index %d claims tree size %d, its checkpoint has %d", cp.Index, cp.TreeSize, tree.Size), nil)
	}
	leafHash := rfc6962.DefaultHasher.HashLeaf(cp.Leaf)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, cp.Index, tree.Size, leafHash, cp.Hashes, tree.Hash); err != nil {
		return ProofRecord{}, p.fail("inclusion", fmt.Sprintf("stream %s seq %d is not proven in the log at index %d", r.Stream, *r.Seq, cp.Index), err)
	}
	return ProofRecord{Stream: r.Stream, Seq: *r.Seq, LogIndex: cp.Index, TreeSize: tree.Size, Header: digest.String(),
		Verified: time.Now().UTC(), TLogProof: cp.TLogProof}, nil
}

// leafHeader reads the batch header a log leaf (a DSSE envelope) carries,
// and its digest.
func leafHeader(leaf []byte) (signer.Header, signer.Digest, error) {
	var env signer.Envelope
	if err := json.Unmarshal(leaf, &env); err != nil {
		return signer.Header{}, signer.Digest{}, err
	}
	if env.PayloadType != signer.PayloadType {
		return signer.Header{}, signer.Digest{}, fmt.Errorf("payload type %q", env.PayloadType)
	}
	h, err := signer.ParseHeader(env.Payload)
	return h, signer.HeaderDigest(env.Payload), err
}

// fail records a failed check of central's log.
func (p *Prover) fail(check, msg string, err error) error {
	p.m.ProofFailures.WithLabelValues(check).Inc()
	if err != nil {
		msg += ": " + err.Error()
	}
	p.log.Error("central's transparency log failed a check; keep this agent's receipts and spool as evidence", "check", check, "problem", msg)
	return errors.New(msg)
}

// save appends verified proofs, then records the state that says they are
// done: a crash between the two re-proves a few batches, never skips one.
func (p *Prover) save(lines []byte) error {
	name := filepath.Join(p.dir(), "proofs.ndjson")
	if fi, err := os.Stat(name); err == nil && fi.Size() > maxReceiptLog {
		if err := os.Rename(name, name+".1"); err != nil {
			return fmt.Errorf("rotate proofs: %w", err)
		}
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open proofs: %w", err)
	}
	if _, err := f.Write(lines); err != nil {
		f.Close()
		return fmt.Errorf("write proofs: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync proofs: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close proofs: %w", err)
	}
	b, _ := json.Marshal(p.st) // plain struct
	return atomicfile.Write(p.statePath(), b)
}

func (p *Prover) get(ctx context.Context, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.cfg.URL, "/")+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProofBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	if len(body) > maxProofBody {
		return nil, 0, fmt.Errorf("GET %s: answer larger than %d bytes", path, maxProofBody)
	}
	return body, resp.StatusCode, nil
}

func truncate(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}
