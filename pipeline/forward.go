package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/provtrail/provtrail/internal/atomicfile"
	"github.com/provtrail/provtrail/pipeline/spool"
	"github.com/provtrail/provtrail/signer"
)

// Forwarder defaults.
const (
	DefaultAckInterval  = 200 * time.Millisecond
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = time.Minute
	DefaultMaxRetryWait = 10 * time.Minute
	// BatchesPath is appended to the forward URL.
	BatchesPath = "/v1/batches"
	// maxReceiptBytes bounds how much of central's answer is read.
	maxReceiptBytes = 64 << 10
	// maxReceiptLog is the size at which receipts.ndjson is rotated to
	// receipts.ndjson.1.
	maxReceiptLog = 64 << 20
)

// Receipt is central's answer to a POSTed batch, as central sends it
// (JSON) and as the agent keeps it (one JSON object per line in
// state_dir/receipts/receipts.ndjson).
type Receipt struct {
	Verdict     string  `json:"verdict"`
	Reason      string  `json:"reason,omitempty"`
	Retry       bool    `json:"retry,omitempty"`
	LogIndex    *uint64 `json:"log_index,omitempty"`
	Checkpoint  string  `json:"checkpoint,omitempty"`
	ProofPath   string  `json:"proof_path,omitempty"`
	MissingFrom *uint64 `json:"missing_from,omitempty"`
	MissingTo   *uint64 `json:"missing_to,omitempty"`

	// Filled in by the agent from the batch it sent.
	Stream       string    `json:"stream_id,omitempty"`
	Seq          *uint64   `json:"seq,omitempty"`
	HeaderSHA256 string    `json:"header_sha256,omitempty"`
	Events       int       `json:"events"`
	Status       int       `json:"status,omitempty"`
	Received     time.Time `json:"received"`
}

// lastAcked is state_dir/receipts/last.json: the newest acknowledged
// batch's envelope, which the chain needs to finish a Seal interrupted by a
// crash once the spool no longer holds that batch.
type lastAcked struct {
	Envelope []byte  `json:"envelope"`
	Receipt  Receipt `json:"receipt"`
}

// LastAckedEnvelope returns the envelope the forwarder recorded as
// acknowledged last under stateDir, or nil.
func LastAckedEnvelope(stateDir string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "receipts", "last.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var la lastAcked
	if err := json.Unmarshal(b, &la); err != nil {
		return nil, fmt.Errorf("receipts/last.json: %w", err)
	}
	return la.Envelope, nil
}

// TLSFiles names the forwarder's TLS material. Empty CAFile means the
// system roots; CertFile and KeyFile are an optional client certificate.
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// NewHTTPClient returns the client the forwarder uses: TLS 1.2+ with the
// given roots and client certificate, HTTP/2 when the server offers it,
// and timeout per request.
func NewHTTPClient(tf TLSFiles, timeout time.Duration) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if tf.CAFile != "" {
		pem, err := os.ReadFile(tf.CAFile)
		if err != nil {
			return nil, fmt.Errorf("forward: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("forward: ca_file %s holds no PEM certificate", tf.CAFile)
		}
		tc.RootCAs = pool
	}
	if tf.CertFile != "" || tf.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(tf.CertFile, tf.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("forward: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tc,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	// URL is central's base URL; batches go to URL + BatchesPath.
	URL    string
	Client *http.Client
	Spool  *spool.Spool
	// Commit makes source positions durable and returns the spool index
	// through which they are (Pipeline.CommitPositions). Entries are
	// acknowledged in the spool only up to that index.
	Commit func() (uint64, error)
	// StateDir holds receipts/ and rejected/.
	StateDir               string
	AckInterval            time.Duration
	MinBackoff, MaxBackoff time.Duration
	MaxRetryWait           time.Duration
	UserAgent              string
	// OnReceipt, if set, is given every receipt of a delivered batch (the
	// Prover's Add).
	OnReceipt func(Receipt)
	// Reseal re-signs the spooled entries from an index on into a new
	// stream (Pipeline.Reseal). It is called when central reports a gap
	// before the oldest batch the agent still holds, which nothing can
	// fill. Without it such batches stay spooled and are retried slowly.
	Reseal  func(ctx context.Context, from uint64, done func(Superseded) error) error
	Metrics *Metrics
	Logger  *slog.Logger
}

// Forwarder sends spooled batches to central, strictly in order, one at a
// time, and acknowledges them in the spool once central has.
type Forwarder struct {
	cfg ForwarderConfig
	log *slog.Logger
	m   *Metrics

	receipts    *os.File
	receiptsBuf *bufio.Writer
	receiptLen  int64
	delivered   map[uint64]lastAcked // delivered, not yet acked in the spool
	pending     uint64               // highest delivered index
	acked       uint64
	lastFlush   time.Time
}

// NewForwarder prepares a forwarder (creating state_dir/receipts and
// state_dir/rejected).
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.URL == "" || cfg.Client == nil || cfg.Spool == nil || cfg.Commit == nil || cfg.StateDir == "" {
		return nil, errors.New("forwarder: URL, Client, Spool, Commit and StateDir are required")
	}
	if cfg.AckInterval <= 0 {
		cfg.AckInterval = DefaultAckInterval
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = DefaultMaxRetryWait
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "provtrail-agent"
	}
	f := &Forwarder{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, delivered: map[uint64]lastAcked{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.m == nil {
		f.m = NewMetrics(prometheus.NewRegistry())
	}
	for _, d := range []string{"receipts", "rejected"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("forwarder: %w", err)
		}
	}
	st := cfg.Spool.Stats()
	f.pending, f.acked = st.Acked, st.Acked
	return f, nil
}

// Run delivers batches until ctx is cancelled. It returns nil then, after
// acknowledging what central already confirmed.
func (f *Forwarder) Run(ctx context.Context) error {
	defer f.closeReceipts()
	cursor := f.pending
	for {
		if f.pending > f.acked && (time.Since(f.lastFlush) >= f.cfg.AckInterval || f.cfg.Spool.Stats().Full) {
			f.flushAcks()
		}
		nctx, cancel := ctx, context.CancelFunc(func() {})
		if f.pending > f.acked {
			nctx, cancel = context.WithTimeout(ctx, f.cfg.AckInterval)
		} else {
			f.m.ForwardLag.Set(0)
		}
		e, err := f.cfg.Spool.Next(nctx, cursor)
		cancel()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, spool.ErrClosed) {
				f.flushAcks()
				return nil
			}
			if errors.Is(err, context.DeadlineExceeded) {
				f.flushAcks()
				continue
			}
			return fmt.Errorf("forwarder: %w", err)
		}
		last, err := f.deliver(ctx, e)
		if err != nil {
			if ctx.Err() != nil {
				f.flushAcks()
				return nil
			}
			return err
		}
		cursor = last
	}
}

type attempt struct {
	status  int
	receipt Receipt
	retry   time.Duration // server's Retry-After
}

// setAsideVerdicts are central's answers that are about this batch and
// will not change on a resend: keep it as evidence and move on.
// unknown_key is not one of them: central also gives it to an agent that is
// not enrolled yet or waits for approval, which every batch would hit.
var setAsideVerdicts = map[string]bool{
	"malformed": true, "body_mismatch": true, "too_large": true,
	"bad_signature": true, "fork": true,
}

// deliver sends one entry until central acknowledges or rejects it, and
// returns the highest spool index dealt with: e's, or past it when a gap
// made the later entries go into a new stream.
func (f *Forwarder) deliver(ctx context.Context, e spool.Entry) (uint64, error) {
	wire, _, err := decodeEntry(e.Data)
	var b signer.Batch
	if err == nil {
		b, err = signer.UnmarshalBatch(wire, signer.Limits{})
	}
	var h signer.Header
	var digest signer.Digest
	if err == nil {
		h, digest, err = signer.Inspect(b, signer.Limits{})
	}
	if err != nil {
		// A checksummed entry we cannot read: nothing to send, keep it.
		f.setAside(e, wire, signer.Header{}, Receipt{Verdict: "unreadable", Reason: err.Error()})
		return e.Index, f.markDelivered(e.Index, nil, Receipt{Verdict: "unreadable"})
	}
	seq := h.Seq
	base := Receipt{Stream: h.StreamID, Seq: &seq, HeaderSHA256: digest.String(), Events: h.Events}
	fails := 0
	for {
		f.m.ForwardLag.Set(time.Since(h.Created).Seconds())
		a, err := f.post(ctx, wire)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return e.Index, ctx.Err()
			}
			f.m.ForwardErrors.WithLabelValues("network").Inc()
			wait = f.backoff(fails)
			f.log.Warn("cannot reach central; will retry", "url", f.cfg.URL, "seq", seq, "err", err, "retry_in", wait.Round(time.Millisecond))
		case a.status >= 200 && a.status < 300:
			r := a.receipt
			if r.Verdict == "" {
				r.Verdict = "accepted"
			}
			if r.Verdict == "gap" {
				// Central stored nothing: it misses earlier seqs of this
				// stream. Sent strictly in order, those were acknowledged
				// before (central lost them) or lost here; no resend fills
				// the gap, so the batches go into a new stream.
				f.m.ForwardBatches.WithLabelValues(r.Verdict).Inc()
				fillReceipt(&r, base, a.status)
				if err := f.writeReceipt(r); err != nil {
					f.log.Error("cannot record receipt", "err", err)
				}
				if f.cfg.Reseal != nil {
					return f.resealFrom(ctx, e, h, r)
				}
				f.m.ForwardErrors.WithLabelValues("gap").Inc()
				wait = f.backoff(max(fails, 4))
				f.log.Error("central misses earlier batches of this stream and stores none after them; batches stay spooled",
					"stream", h.StreamID, "seq", seq, "reason", r.Reason, "retry_in", wait.Round(time.Millisecond))
				break
			}
			f.m.ForwardBatches.WithLabelValues(r.Verdict).Inc()
			f.m.LastAck.SetToCurrentTime()
			fillReceipt(&r, base, a.status)
			return e.Index, f.markDelivered(e.Index, b.Envelope, r)
		case a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable:
			f.m.ForwardErrors.WithLabelValues("throttled").Inc()
			wait = a.retry
			if wait <= 0 {
				wait = f.backoff(fails)
			}
			wait = min(wait, f.cfg.MaxRetryWait)
			f.log.Info("central asks to slow down", "status", a.status, "seq", seq, "retry_in", wait.Round(time.Millisecond))
		case a.status >= 500:
			f.m.ForwardErrors.WithLabelValues("server").Inc()
			wait = f.backoff(fails)
			f.log.Warn("central failed; will retry", "status", a.status, "seq", seq, "reason", a.receipt.Reason, "retry_in", wait.Round(time.Millisecond))
		case setAsideVerdicts[a.receipt.Verdict]:
			f.m.ForwardErrors.WithLabelValues("rejected").Inc()
			f.m.ForwardBatches.WithLabelValues(a.receipt.Verdict).Inc()
			r := a.receipt
			fillReceipt(&r, base, a.status)
			f.setAside(e, wire, h, r)
			return e.Index, f.markDelivered(e.Index, b.Envelope, r)
		default:
			// 4xx that is not about this batch (wrong audience, not
			// enrolled, wrong URL): every batch would fail the same way.
			// Keep them all and retry slowly.
			f.m.ForwardErrors.WithLabelValues("client").Inc()
			wait = f.backoff(max(fails, 4))
			f.log.Error("central refuses this agent's batches; fix the configuration or enrol the agent. Batches stay spooled",
				"status", a.status, "verdict", a.receipt.Verdict, "reason", a.receipt.Reason, "seq", seq, "retry_in", wait.Round(time.Millisecond))
		}
		fails++
		// Acknowledge what was already delivered before waiting.
		f.flushAcks()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return e.Index, ctx.Err()
		case <-t.C:
		}
	}
}

// resealFrom has the pipeline re-sign every spooled entry from e on into a
// new stream, and acknowledges each old entry once its copy is durable.
// It returns the last index replaced; Run goes on with the copies.
func (f *Forwarder) resealFrom(ctx context.Context, e spool.Entry, h signer.Header, gap Receipt) (uint64, error) {
	f.log.Error("CENTRAL MISSES EARLIER BATCHES of this stream that this agent no longer holds (central lost acknowledged batches, e.g. restored from a backup, or they were lost here). "+
		"Re-signing every unacknowledged batch into a new stream so that central stores them; central reports the gap and the new stream",
		"stream", h.StreamID, "seq", h.Seq, "reason", gap.Reason)
	last := e.Index - 1
	err := f.cfg.Reseal(ctx, e.Index, func(s Superseded) error {
		seq := s.Header.Seq
		r := Receipt{Verdict: "resealed", Stream: s.Header.StreamID, Seq: &seq, Events: s.Header.Events, Received: time.Now().UTC()}
		if s.CopyAt != 0 {
			r.Reason = fmt.Sprintf("re-signed into a new stream as spool entry %d", s.CopyAt)
		}
		if s.Err != nil {
			r = Receipt{Verdict: "unreadable", Reason: s.Err.Error(), Received: time.Now().UTC()}
			f.setAside(s.Entry, nil, signer.Header{}, r)
		}
		f.m.ForwardBatches.WithLabelValues(r.Verdict).Inc()
		if err := f.markDelivered(s.Entry.Index, nil, r); err != nil {
			return err
		}
		f.flushAcks()
		last = s.Entry.Index
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		// What was replaced is acknowledged; the rest is sent as it is,
		// and the next gap reseals it.
		wait := f.backoff(4)
		f.log.Error("re-signing into a new stream failed; will retry", "err", err, "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-t.C:
		}
	}
	return last, nil
}

func fillReceipt(r *Receipt, base Receipt, status int) {
	r.Stream, r.Seq, r.HeaderSHA256, r.Events = base.Stream, base.Seq, base.HeaderSHA256, base.Events
	r.Status = status
	r.Received = time.Now().UTC()
}

// backoff is exponential with jitter: a random duration in [d/2, d] where
// d = MinBackoff * 2^fails, capped at MaxBackoff.
func (f *Forwarder) backoff(fails int) time.Duration {
	d := f.cfg.MinBackoff << min(fails, 20)
	if d <= 0 || d > f.cfg.MaxBackoff {
		d = f.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (f *Forwarder) post(ctx context.Context, wire []byte) (attempt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(f.cfg.URL, "/")+BatchesPath, bytes.NewReader(wire))
	if err != nil {
		return attempt{}, err
	}
	req.Header.Set("Content-Type", signer.BatchMediaType)
	req.Header.Set("User-Agent", f.cfg.UserAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		return attempt{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReceiptBytes))
	if err != nil {
		return attempt{}, fmt.Errorf("read central's answer: %w", err)
	}
	a := attempt{status: resp.StatusCode, retry: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &a.receipt) != nil {
		a.receipt = Receipt{Reason: strings.TrimSpace(string(body[:min(len(body), 512)]))}
	}
	return a, nil
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// markDelivered records a receipt; the spool ack follows in flushAcks.
func (f *Forwarder) markDelivered(idx uint64, env []byte, r Receipt) error {
	if err := f.writeReceipt(r); err != nil {
		f.log.Error("cannot record receipt", "err", err)
	}
	if env != nil {
		f.delivered[idx] = lastAcked{Envelope: env, Receipt: r}
	}
	if f.cfg.OnReceipt != nil {
		f.cfg.OnReceipt(r)
	}
	f.pending = idx
	return nil
}

func (f *Forwarder) writeReceipt(r Receipt) error {
	if f.receipts == nil || f.receiptLen > maxReceiptLog {
		if err := f.openReceipts(); err != nil {
			return err
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	n, err := f.receiptsBuf.Write(b)
	f.receiptLen += int64(n)
	return err
}

func (f *Forwarder) openReceipts() error {
	p := filepath.Join(f.cfg.StateDir, "receipts", "receipts.ndjson")
	if f.receipts != nil {
		f.closeReceipts()
		if err := os.Rename(p, p+".1"); err != nil {
			return fmt.Errorf("rotate receipts: %w", err)
		}
	}
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open receipts: %w", err)
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return err
	}
	f.receipts, f.receiptsBuf, f.receiptLen = fh, bufio.NewWriter(fh), fi.Size()
	return nil
}

func (f *Forwarder) closeReceipts() {
	if f.receipts != nil {
		f.receiptsBuf.Flush()
		f.receipts.Sync()
		f.receipts.Close()
		f.receipts, f.receiptsBuf = nil, nil
	}
}

// flushAcks makes receipts and positions durable, records the newest
// acknowledged envelope, and acknowledges the delivered entries in the
// spool, up to the index whose positions are committed.
func (f *Forwarder) flushAcks() {
	f.lastFlush = time.Now()
	if f.pending <= f.acked {
		return
	}
	through, err := f.cfg.Commit()
	if err != nil {
		f.log.Error("commit positions before acknowledging spool entries", "err", err)
		return
	}
	to := min(f.pending, through)
	if to <= f.acked {
		return
	}
	if f.receipts != nil {
		if err := f.receiptsBuf.Flush(); err != nil {
			f.log.Error("write receipts", "err", err)
		} else if err := f.receipts.Sync(); err != nil {
			f.log.Error("fsync receipts", "err", err)
		}
	}
	// The chain needs the newest stored envelope after a crash; once the
	// spool may drop it, last.json has it.
	var newest uint64
	for idx := range f.delivered {
		if idx <= to && idx > newest {
			newest = idx
		}
	}
	if la, ok := f.delivered[newest]; ok {
		b, err := json.Marshal(la)
		if err == nil {
			err = atomicfile.Write(filepath.Join(f.cfg.StateDir, "receipts", "last.json"), b)
		}
		if err != nil {
			f.log.Error("record last acknowledged batch; spool entries kept", "err", err)
			return
		}
	}
	if err := f.cfg.Spool.Ack(to); err != nil {
		f.log.Error("acknowledge spool entries", "through", to, "err", err)
		return
	}
	for idx := range f.delivered {
		if idx <= to {
			delete(f.delivered, idx)
		}
	}
	f.acked = to
}

// setAside keeps a rejected batch and central's answer under
// state_dir/rejected and says so loudly.
func (f *Forwarder) setAside(e spool.Entry, wire []byte, h signer.Header, r Receipt) {
	f.m.ForwardSetAside.Inc()
	name := fmt.Sprintf("spool-%016x", e.Index)
	if h.StreamID != "" {
		name = fmt.Sprintf("%s-seq-%020d", h.StreamID, h.Seq)
	}
	dir := filepath.Join(f.cfg.StateDir, "rejected")
	data := wire
	if data == nil {
		data = e.Data
	}
	bp := filepath.Join(dir, name+".batch")
	err := atomicfile.Write(bp, data)
	if err == nil {
		var rb []byte
		if rb, err = json.MarshalIndent(r, "", "  "); err == nil {
			err = atomicfile.Write(filepath.Join(dir, name+".json"), rb)
		}
	}
	if err != nil {
		f.log.Error("cannot keep rejected batch as evidence", "path", bp, "err", err)
	}
	f.log.Error("CENTRAL REJECTED A BATCH: not retrying it; it is kept as evidence. Investigate: this means tampering, a bug, or an agent/central mismatch",
		"verdict", r.Verdict, "reason", r.Reason, "stream", h.StreamID, "seq", h.Seq, "events", h.Events, "kept_at", bp)
}
