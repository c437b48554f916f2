package signer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/sigstore/sigstore/pkg/signature"
)

// Verdict is central's answer to one batch of a stream.
type Verdict int

// Verdicts, in the order docs/protocol.md lists them. The zero Verdict is invalid.
const (
	// Accepted: next in order, signed by the expected key, body intact. Store it, append
	// the header to the log, advance the stream state.
	Accepted Verdict = iota + 1
	// Duplicate: this seq was already accepted with the identical header digest. Ack
	// again, store nothing new.
	Duplicate
	// Fork: a validly signed header for an accepted seq with a different digest, or at
	// the expected seq with a prev that is not the last accepted header. Reject, keep as
	// evidence, alert.
	Fork
	// Gap: seq is ahead of the expected one; the signature cannot be checked yet. Hold it
	// and alert if the gap is never filled.
	Gap
	// BadSignature: the signature does not verify under the key the stream expects.
	BadSignature
	// UnknownKey: the header names a key that is not the one the stream expects.
	UnknownKey
	// WrongAudience: the batch is for another central/tenant.
	WrongAudience
	// BodyMismatch: body length, digest, decoded length or event count differ from the header.
	BodyMismatch
	// Malformed: the framing, envelope or header cannot be decoded or violates the protocol.
	Malformed
	// TooLarge: a size limit was exceeded (checked before doing the work).
	TooLarge
)

var verdictNames = [...]string{"", "accepted", "duplicate", "fork", "gap", "bad_signature", "unknown_key", "wrong_audience", "body_mismatch", "malformed", "too_large"}

// String returns the wire name ("accepted", "bad_signature", ...).
func (v Verdict) String() string {
	if v <= 0 || int(v) >= len(verdictNames) {
		return fmt.Sprintf("verdict(%d)", int(v))
	}
	return verdictNames[v]
}

// MarshalText implements encoding.TextMarshaler.
func (v Verdict) MarshalText() ([]byte, error) {
	if v <= 0 || int(v) >= len(verdictNames) {
		return nil, fmt.Errorf("invalid verdict %d", int(v))
	}
	return []byte(v.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (v *Verdict) UnmarshalText(b []byte) error {
	for i, n := range verdictNames {
		if i > 0 && n == string(b) {
			*v = Verdict(i)
			return nil
		}
	}
	return fmt.Errorf("unknown verdict %q", truncate(string(b), 40))
}

// HTTPStatus is the status central answers a POSTed batch with (docs/protocol.md).
func (v Verdict) HTTPStatus() int {
	switch v {
	case Accepted, Duplicate:
		return http.StatusOK
	case Gap:
		return http.StatusAccepted
	case Fork:
		return http.StatusConflict
	case BadSignature, UnknownKey:
		return http.StatusForbidden
	case WrongAudience:
		return http.StatusMisdirectedRequest
	case BodyMismatch:
		return http.StatusUnprocessableEntity
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusBadRequest
	}
}

// Acknowledged reports whether the agent may drop the batch from its spool (Accepted or
// Duplicate).
func (v Verdict) Acknowledged() bool { return v == Accepted || v == Duplicate }

// VerdictError is a rejecting verdict with its reason, as an error.
type VerdictError struct {
	Verdict Verdict
	Reason  string
}

func (e *VerdictError) Error() string {
	if e.Reason == "" {
		return e.Verdict.String()
	}
	return e.Verdict.String() + ": " + e.Reason
}

// Limits bound the work done per batch. Zero fields take the Default* values.
type Limits struct {
	MaxEnvelope     int   // bytes of the DSSE envelope
	MaxBody         int64 // bytes of the body as sent
	MaxDecompressed int64 // bytes of the decoded body (raw_len)
	MaxEvents       int   // events per batch
}

// Default limits.
const (
	DefaultMaxEnvelope     = 16 << 10
	DefaultMaxBody         = 32 << 20
	DefaultMaxDecompressed = 128 << 20
	DefaultMaxEvents       = 100_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxEnvelope <= 0 {
		l.MaxEnvelope = DefaultMaxEnvelope
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.MaxDecompressed <= 0 {
		l.MaxDecompressed = DefaultMaxDecompressed
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	return l
}

// StreamState is what central keeps per (agent_id, stream_id) to verify the next batch.
// It is plain data and JSON-marshalable; central stores the Result.Next of an Accepted
// batch in the same transaction as the batch itself.
type StreamState struct {
	// AgentID is the enrolled agent name.
	AgentID string `json:"agent_id"`
	// IdentityKey is the agent's long-term public key, PKIX DER (base64 in JSON).
	IdentityKey []byte `json:"identity_key"`
	// StreamID is empty until seq 0 of the stream is accepted.
	StreamID string `json:"stream_id,omitempty"`
	// NextSeq is the seq the next batch must have.
	NextSeq uint64 `json:"next_seq"`
	// LastDigest is the header digest of batch NextSeq-1 (zero before seq 0).
	LastDigest Digest `json:"last_digest"`
	// NextKey is the raw Ed25519 public key that must sign batch NextSeq (empty before seq 0,
	// when the identity key signs).
	NextKey []byte `json:"next_key,omitempty"`
	// LastCreated is the created time of batch NextSeq-1.
	LastCreated time.Time `json:"last_created,omitzero"`
}

// NewStreamState returns the state of a stream not seen yet for an agent whose identity
// key is identity. Use it when a batch names a stream_id central has no state for.
func NewStreamState(agentID string, identity crypto.PublicKey) (StreamState, error) {
	if err := checkPublicKey(identity); err != nil {
		return StreamState{}, err
	}
	der, err := x509.MarshalPKIXPublicKey(identity)
	if err != nil {
		return StreamState{}, fmt.Errorf("stream state: %w", err)
	}
	return StreamState{AgentID: agentID, IdentityKey: der}, nil
}

// HeaderRecord is what central stores per accepted header so that a later batch with the
// same seq can be classified Duplicate or Fork.
type HeaderRecord struct {
	Seq    uint64 `json:"seq"`
	Digest Digest `json:"digest"`
	KeyID  string `json:"key_id"`
	// SignerKey is the PKIX DER public key that signed the header.
	SignerKey []byte `json:"signer_key"`
}

// History looks up accepted headers of a stream. Central implements it over its store.
type History interface {
	// HeaderAt returns the record accepted at seq; ok is false when there is none.
	HeaderAt(ctx context.Context, agentID, streamID string, seq uint64) (rec HeaderRecord, ok bool, err error)
}

// HistoryFunc adapts a function to History.
type HistoryFunc func(ctx context.Context, agentID, streamID string, seq uint64) (HeaderRecord, bool, error)

// HeaderAt calls f.
func (f HistoryFunc) HeaderAt(ctx context.Context, agentID, streamID string, seq uint64) (HeaderRecord, bool, error) {
	return f(ctx, agentID, streamID, seq)
}

// Result is the outcome of Verify.
type Result struct {
	Verdict Verdict
	// Reason explains a rejecting verdict (safe to return to the agent and to log).
	Reason string
	// Header is the decoded header when it could be parsed. It is authenticated only when
	// SignatureVerified is true.
	Header Header
	// HeaderDigest is SHA-256 of the header payload (when the envelope could be parsed).
	HeaderDigest      Digest
	SignatureVerified bool
	// Next is the stream state after this batch: advanced for Accepted, else the input.
	Next StreamState
	// Record is what to store for HeaderAt (Accepted only).
	Record HeaderRecord
	// Existing is the stored record this batch was compared with (Duplicate, Fork).
	Existing *HeaderRecord
	// Body is the decoded NDJSON body (Accepted only; aliases the batch body for identity).
	Body []byte
	// MissingFrom and MissingTo bound the missing seqs [MissingFrom, MissingTo) of a Gap.
	MissingFrom, MissingTo uint64
	// StreamStart is true when an Accepted batch is seq 0 (a new stream or a reset; see
	// Header.PrevStream).
	StreamStart bool
}

// Err returns nil for Accepted and Duplicate, else a *VerdictError.
func (r Result) Err() error {
	if r.Verdict.Acknowledged() {
		return nil
	}
	return &VerdictError{Verdict: r.Verdict, Reason: r.Reason}
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Audience is this central's (tenant's) id; headers with another "aud" are WrongAudience.
	Audience string
	Limits   Limits
	// History answers Duplicate/Fork for seqs older than the last accepted one. Without it
	// such batches make Verify return an error (retry later), never a guess.
	History History
	Logger  *slog.Logger
}

// Verifier checks batches against stream state. Safe for concurrent use; callers must
// serialise Verify calls per stream and store Result.Next before the next call.
type Verifier struct {
	aud     string
	lim     Limits
	history History
	log     *slog.Logger
	zstd    sync.Pool // *zstd.Decoder
}

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("verifier: audience is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{aud: cfg.Audience, lim: cfg.Limits.withDefaults(), history: cfg.History, log: log}, nil
}

// Limits returns the effective limits.
func (v *Verifier) Limits() Limits { return v.lim }

// Inspect decodes the envelope and header of b without verifying anything cryptographic,
// so that the caller can look up the StreamState for (Header.AgentID, Header.StreamID).
// Errors are *VerdictError (Malformed or TooLarge).
func Inspect(b Batch, lim Limits) (Header, Digest, error) {
	lim = lim.withDefaults()
	p, err := parseBatchHeader(b, lim)
	if err != nil {
		return Header{}, Digest{}, err
	}
	return p.h, p.digest, nil
}

type parsed struct {
	h       Header
	payload []byte
	digest  Digest
	keyID   string
	sig     []byte
}

func parseBatchHeader(b Batch, lim Limits) (*parsed, error) {
	if len(b.Envelope) > lim.MaxEnvelope {
		return nil, &VerdictError{Verdict: TooLarge, Reason: fmt.Sprintf("envelope is %d bytes, limit %d", len(b.Envelope), lim.MaxEnvelope)}
	}
	if int64(len(b.Body)) > lim.MaxBody {
		return nil, &VerdictError{Verdict: TooLarge, Reason: fmt.Sprintf("body is %d bytes, limit %d", len(b.Body), lim.MaxBody)}
	}
	payload, keyID, sig, err := parseEnvelope(b.Envelope)
	if err != nil {
		return nil, &VerdictError{Verdict: Malformed, Reason: err.Error()}
	}
	h, err := ParseHeader(payload)
	if err != nil {
		return nil, &VerdictError{Verdict: Malformed, Reason: err.Error()}
	}
	if keyID != h.KeyID {
		return nil, &VerdictError{Verdict: Malformed, Reason: "envelope keyid differs from header key_id"}
	}
	if b.Encoding != h.BodyEncoding {
		return nil, &VerdictError{Verdict: Malformed, Reason: fmt.Sprintf("declared encoding %q differs from header body_encoding %q", truncate(string(b.Encoding), 40), h.BodyEncoding)}
	}
	if h.RawLen > lim.MaxDecompressed {
		return nil, &VerdictError{Verdict: TooLarge, Reason: fmt.Sprintf("raw_len %d exceeds limit %d", h.RawLen, lim.MaxDecompressed)}
	}
	if h.BodyLen > lim.MaxBody {
		return nil, &VerdictError{Verdict: TooLarge, Reason: fmt.Sprintf("body_len %d exceeds limit %d", h.BodyLen, lim.MaxBody)}
	}
	if h.Events > lim.MaxEvents {
		return nil, &VerdictError{Verdict: TooLarge, Reason: fmt.Sprintf("%d events exceed limit %d", h.Events, lim.MaxEvents)}
	}
	return &parsed{h: h, payload: payload, digest: HeaderDigest(payload), keyID: keyID, sig: sig}, nil
}

// Verify classifies batch b against st, the state of the stream b claims to belong to
// (NewStreamState for a stream not seen yet). The checks run cheapest first: sizes,
// envelope and header decoding, audience, stream position, key, signature, body digest,
// bounded decompression, event count. The returned error is non-nil only when the
// verdict cannot be decided (a History failure or no History for an old seq, or ctx
// done); the caller should then answer "retry later".
func (v *Verifier) Verify(ctx context.Context, st StreamState, b Batch) (Result, error) {
	res := Result{Next: st}
	reject := func(verdict Verdict, format string, args ...any) (Result, error) {
		res.Verdict = verdict
		res.Reason = fmt.Sprintf(format, args...)
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	p, err := parseBatchHeader(b, v.lim)
	if err != nil {
		var ve *VerdictError
		errors.As(err, &ve)
		return reject(ve.Verdict, "%s", ve.Reason)
	}
	h := p.h
	res.Header = h
	res.HeaderDigest = p.digest
	if h.Audience != v.aud {
		return reject(WrongAudience, "batch is for audience %q, this is %q", truncate(h.Audience, 80), v.aud)
	}
	if h.AgentID != st.AgentID {
		return reject(Malformed, "batch is for agent %q, stream state is for agent %q", truncate(h.AgentID, 80), st.AgentID)
	}

	var signer crypto.PublicKey
	switch {
	case st.StreamID == "" && h.Seq == 0:
		pub, err := x509.ParsePKIXPublicKey(st.IdentityKey)
		if err != nil {
			return res, fmt.Errorf("stream state of %s: identity key: %w", st.AgentID, err)
		}
		signer = pub
	case st.StreamID == "":
		res.MissingFrom, res.MissingTo = 0, h.Seq
		return reject(Gap, "stream %s not seen yet: seqs 0..%d missing", h.StreamID, h.Seq-1)
	case st.StreamID != h.StreamID:
		return reject(Malformed, "batch is for stream %s, stream state is for stream %s", h.StreamID, st.StreamID)
	case h.Seq > st.NextSeq:
		res.MissingFrom, res.MissingTo = st.NextSeq, h.Seq
		return reject(Gap, "seq %d is ahead: seqs %d..%d missing", h.Seq, st.NextSeq, h.Seq-1)
	case h.Seq < st.NextSeq:
		return v.verifyOld(ctx, st, p, res)
	default:
		if len(st.NextKey) != ed25519.PublicKeySize {
			return res, fmt.Errorf("stream state of %s/%s: next_key has %d bytes", st.AgentID, st.StreamID, len(st.NextKey))
		}
		signer = ed25519.PublicKey(st.NextKey)
	}

	wantID, err := KeyID(signer)
	if err != nil {
		return res, err
	}
	if h.KeyID != wantID {
		return reject(UnknownKey, "seq %d signed by key %s, stream expects key %s", h.Seq, h.KeyID, wantID)
	}
	if err := verifySig(signer, p.payload, p.sig); err != nil {
		return reject(BadSignature, "seq %d: signature does not verify under key %s", h.Seq, wantID)
	}
	res.SignatureVerified = true
	if h.Seq > 0 && h.Prev != st.LastDigest {
		return reject(Fork, "seq %d: prev %s is not the last accepted header %s", h.Seq, h.Prev, st.LastDigest)
	}
	body, verdict, reason := v.checkBody(ctx, &h, b.Body)
	if verdict != 0 {
		return reject(verdict, "%s", reason)
	}
	der, err := x509.MarshalPKIXPublicKey(signer)
	if err != nil {
		return res, err
	}
	res.Verdict = Accepted
	res.Body = body
	res.StreamStart = h.Seq == 0
	res.Record = HeaderRecord{Seq: h.Seq, Digest: p.digest, KeyID: h.KeyID, SignerKey: der}
	res.Next = StreamState{
		AgentID:     st.AgentID,
		IdentityKey: st.IdentityKey,
		StreamID:    h.StreamID,
		NextSeq:     h.Seq + 1,
		LastDigest:  p.digest,
		NextKey:     append([]byte(nil), h.NextPub...),
		LastCreated: h.Created,
	}
	return res, nil
}

// verifyOld classifies a batch whose seq was already accepted: Duplicate when the header
// digest equals the stored one, Fork when it differs and the signature verifies under the
// key that signed the stored header, UnknownKey/BadSignature otherwise.
func (v *Verifier) verifyOld(ctx context.Context, st StreamState, p *parsed, res Result) (Result, error) {
	h := p.h
	var rec HeaderRecord
	switch {
	case h.Seq+1 == st.NextSeq && p.digest == st.LastDigest:
		res.Verdict = Duplicate
		res.Reason = fmt.Sprintf("seq %d already accepted", h.Seq)
		res.Existing = &HeaderRecord{Seq: h.Seq, Digest: st.LastDigest, KeyID: h.KeyID}
		return res, nil
	case v.history == nil:
		return res, fmt.Errorf("verify %s/%s seq %d: seq already accepted and no history to compare with", h.AgentID, h.StreamID, h.Seq)
	}
	rec, ok, err := v.history.HeaderAt(ctx, st.AgentID, st.StreamID, h.Seq)
	if err != nil {
		return res, fmt.Errorf("verify %s/%s seq %d: history: %w", h.AgentID, h.StreamID, h.Seq, err)
	}
	if !ok {
		return res, fmt.Errorf("verify %s/%s seq %d: seq already accepted but not in history", h.AgentID, h.StreamID, h.Seq)
	}
	res.Existing = &rec
	if rec.Digest == p.digest {
		res.Verdict = Duplicate
		res.Reason = fmt.Sprintf("seq %d already accepted", h.Seq)
		return res, nil
	}
	if h.KeyID != rec.KeyID {
		res.Verdict = UnknownKey
		res.Reason = fmt.Sprintf("seq %d (already accepted) signed by key %s, the accepted one by %s", h.Seq, h.KeyID, rec.KeyID)
		return res, nil
	}
	pub, err := x509.ParsePKIXPublicKey(rec.SignerKey)
	if err != nil {
		return res, fmt.Errorf("verify %s/%s seq %d: stored signer key: %w", h.AgentID, h.StreamID, h.Seq, err)
	}
	if err := verifySig(pub, p.payload, p.sig); err != nil {
		res.Verdict = BadSignature
		res.Reason = fmt.Sprintf("seq %d: signature does not verify under key %s", h.Seq, rec.KeyID)
		return res, nil
	}
	res.SignatureVerified = true
	res.Verdict = Fork
	res.Reason = fmt.Sprintf("seq %d already accepted with header %s, this one is %s", h.Seq, rec.Digest, p.digest)
	return res, nil
}

func verifySig(pub crypto.PublicKey, payload, sig []byte) error {
	pae := PAE(PayloadType, payload)
	if k, ok := pub.(ed25519.PublicKey); ok {
		// Same as signature.ED25519Verifier without the io.Reader round trip.
		if !ed25519.Verify(k, pae, sig) {
			return errors.New("invalid signature")
		}
		return nil
	}
	ver, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return err
	}
	return ver.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae))
}

// checkBody verifies the body against h and decodes it within limits. It returns the
// decoded body, or a verdict and reason.
func (v *Verifier) checkBody(ctx context.Context, h *Header, body []byte) ([]byte, Verdict, string) {
	if int64(len(body)) != h.BodyLen {
		return nil, BodyMismatch, fmt.Sprintf("body is %d bytes, header says %d", len(body), h.BodyLen)
	}
	if sha256.Sum256(body) != h.BodySHA256 {
		return nil, BodyMismatch, "body SHA-256 differs from header body_sha256"
	}
	raw, verdict, reason := v.decode(ctx, h.BodyEncoding, body, h.RawLen)
	if verdict != 0 {
		return nil, verdict, reason
	}
	if n := countEvents(raw); n != h.Events {
		return nil, BodyMismatch, fmt.Sprintf("body holds %d NDJSON lines, header says %d events", n, h.Events)
	}
	if len(raw) > 0 && raw[len(raw)-1] != '\n' {
		return nil, BodyMismatch, "body does not end with a newline"
	}
	return raw, 0, ""
}

func countEvents(raw []byte) int { return bytes.Count(raw, []byte{'\n'}) }

// OpenBody returns b's header and its decoded NDJSON body, checked against
// the header's digest, lengths and event count, without verifying any
// signature: it is for the sender re-reading a batch it sealed itself (an
// agent re-signing spooled batches into a new stream), never for judging
// a batch received.
func OpenBody(b Batch, lim Limits) (Header, []byte, error) {
	lim = lim.withDefaults()
	p, err := parseBatchHeader(b, lim)
	if err != nil {
		return Header{}, nil, err
	}
	v := &Verifier{lim: lim}
	raw, verdict, reason := v.checkBody(context.Background(), &p.h, b.Body)
	if verdict != 0 {
		return Header{}, nil, &VerdictError{Verdict: verdict, Reason: reason}
	}
	return p.h, raw, nil
}

// decode returns the decoded body, reading at most rawLen+1 bytes of output so that a
// decompression bomb costs at most the declared (and limited) size.
func (v *Verifier) decode(_ context.Context, enc Encoding, body []byte, rawLen int64) ([]byte, Verdict, string) {
	var r io.Reader
	switch enc {
	case EncodingIdentity:
		return body, 0, ""
	case EncodingGzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, BodyMismatch, "gzip: " + err.Error()
		}
		r = zr
	case EncodingZstd:
		zd, _ := v.zstd.Get().(*zstd.Decoder)
		if zd == nil {
			var err error
			zd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(uint64(v.lim.MaxDecompressed)+1), zstd.WithDecoderMaxWindow(8<<20))
			if err != nil {
				return nil, Malformed, "zstd: " + err.Error()
			}
		}
		if err := zd.Reset(bytes.NewReader(body)); err != nil {
			v.zstd.Put(zd)
			return nil, BodyMismatch, "zstd: " + err.Error()
		}
		defer func() { _ = zd.Reset(nil); v.zstd.Put(zd) }()
		r = zd
	default:
		return nil, Malformed, "unknown encoding"
	}
	out := make([]byte, rawLen)
	n, err := io.ReadFull(r, out)
	if isSizeLimitErr(err) {
		return nil, TooLarge, fmt.Sprintf("%s body exceeds a decoder limit: %v", enc, err)
	}
	if err != nil {
		return nil, BodyMismatch, fmt.Sprintf("%s body decodes to %d bytes, header says raw_len %d (%v)", enc, n, rawLen, err)
	}
	var one [1]byte
	m, err := io.ReadFull(r, one[:])
	if m != 0 || isSizeLimitErr(err) {
		// More output than declared: a decompression bomb or a lying header. Reading
		// stopped after raw_len+1 bytes.
		return nil, TooLarge, fmt.Sprintf("%s body decodes to more than raw_len %d bytes", enc, rawLen)
	}
	if err != io.EOF {
		return nil, BodyMismatch, fmt.Sprintf("%s body has undecodable trailing data: %v", enc, err)
	}
	return out, 0, ""
}

// isSizeLimitErr reports decoder errors caused by our resource limits (window or output
// size), which are TooLarge rather than BodyMismatch.
func isSizeLimitErr(err error) bool {
	return errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrFrameSizeExceeded)
}
