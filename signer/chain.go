package signer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Signer is the long-term identity key as the Chain needs it. *PrivateKey implements it.
type Signer interface {
	Public() crypto.PublicKey
	Sign(ctx context.Context, msg []byte) ([]byte, error)
}

// ChainStateFile is the name of the chain state file inside ChainConfig.Dir (two
// checksummed slots overwritten in place; see statefile.go and docs/protocol.md §12).
const ChainStateFile = "chain.state"

// ChainConfig configures an agent-side Chain.
type ChainConfig struct {
	// Dir is the chain's state directory (created with mode 0700). It holds ChainStateFile
	// (mode 0600), which contains the two not-yet-used Ed25519 chain private keys.
	Dir string
	// Audience is central's (tenant's) id, written into every header as "aud".
	Audience string
	// AgentID is this agent's enrolled name.
	AgentID string
	// Identity is the long-term identity key. It signs seq 0 of every stream. It may be
	// nil when the state dir already holds a usable stream; Open then fails only if a
	// new stream has to be started.
	Identity Signer
	// Encoding compresses non-empty bodies (EncodingIdentity when empty). Heartbeats are
	// always identity.
	Encoding Encoding
	// LastStored returns the DSSE envelope of the newest batch the caller durably stored
	// (spool, or its receipt after central acknowledged it), or nil if none. Open uses it
	// to finish a Seal that was interrupted by a crash after the store and before the
	// state write. Nil means "nothing stored".
	LastStored func(ctx context.Context) ([]byte, error)
	// Now and Rand are for tests and test vectors; nil means time.Now and crypto/rand.
	Now    func() time.Time
	Rand   io.Reader
	Logger *slog.Logger
}

// Meta describes the events of a body given to Seal.
type Meta struct {
	// FirstTime and LastTime are the earliest and latest event time; required when the
	// body holds events, ignored for heartbeats.
	FirstTime, LastTime time.Time
}

// ChainInfo is a snapshot of a Chain's position (no key material).
type ChainInfo struct {
	AgentID  string
	StreamID string
	// NextSeq is the seq the next Seal will use.
	NextSeq uint64
	// Prev is the header digest of seq NextSeq-1 (zero before the first Seal).
	Prev Digest
	// Started is true when Open started a new stream (state missing, unusable, or for
	// another agent/audience/identity); PrevStream names the abandoned stream if known.
	Started    bool
	PrevStream string
}

// chainFile is the JSON content of a ChainStateFile slot.
type chainFile struct {
	V             int    `json:"v"`
	Audience      string `json:"aud"`
	AgentID       string `json:"agent_id"`
	IdentityKeyID string `json:"identity_key_id"`
	StreamID      string `json:"stream_id"`
	PrevStream    string `json:"prev_stream,omitempty"`
	Seq           uint64 `json:"seq"`
	Prev          Digest `json:"prev"`
	// Key is the Ed25519 seed that signs Seq (absent at seq 0: the identity key signs).
	Key []byte `json:"key,omitempty"`
	// NextKey is the Ed25519 seed whose public key header Seq names as next_pub.
	NextKey []byte `json:"next_key"`
}

func (f *chainFile) valid() error {
	switch {
	case f.V != 1:
		return fmt.Errorf("version %d", f.V)
	case !isStreamID(f.StreamID):
		return errors.New("bad stream_id")
	case f.Seq == 0 && len(f.Key) != 0:
		return errors.New("key present at seq 0")
	case f.Seq > 0 && len(f.Key) != ed25519.SeedSize:
		return errors.New("key missing")
	case len(f.NextKey) != ed25519.SeedSize:
		return errors.New("next_key missing")
	case (f.Seq == 0) != f.Prev.IsZero():
		return errors.New("prev inconsistent with seq")
	}
	return nil
}

func (f *chainFile) wipe() {
	clear(f.Key)
	clear(f.NextKey)
}

// Chain seals batches of one agent stream: it signs each header with the key committed by
// the previous header (the identity key at seq 0), names a fresh Ed25519 key for the next
// one, and durably advances its state dir. Safe for concurrent use (Seal calls are
// serialised).
type Chain struct {
	mu      sync.Mutex
	cfg     ChainConfig
	log     *slog.Logger
	sf      *stateFile
	st      chainFile
	idKeyID string
	started bool
	closed  bool
	broken  error // set when a stored batch could not be recorded in the state
	zenc    *zstd.Encoder
}

// OpenChain loads (or starts) the stream in cfg.Dir. It starts a new stream, signed by
// cfg.Identity at seq 0, when the state file is missing, unreadable, or belongs to another
// agent, audience or identity key; ChainInfo.Started then says so.
func OpenChain(ctx context.Context, cfg ChainConfig) (*Chain, error) {
	if cfg.Dir == "" || cfg.Audience == "" || cfg.AgentID == "" {
		return nil, errors.New("chain: Dir, Audience and AgentID are required")
	}
	if cfg.Encoding == "" {
		cfg.Encoding = EncodingIdentity
	}
	if !cfg.Encoding.Valid() {
		return nil, fmt.Errorf("chain: unknown encoding %q", cfg.Encoding)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	c := &Chain{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Identity != nil {
		id, err := KeyID(cfg.Identity.Public())
		if err != nil {
			return nil, fmt.Errorf("chain: identity: %w", err)
		}
		c.idKeyID = id
	}
	if cfg.Encoding == EncodingZstd {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("chain: zstd: %w", err)
		}
		c.zenc = enc
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	if err := c.load(ctx); err != nil {
		if c.sf != nil {
			c.sf.close()
		}
		return nil, err
	}
	return c, nil
}

func (c *Chain) load(ctx context.Context) error {
	sf, payload, created, err := openStateFile(filepath.Join(c.cfg.Dir, ChainStateFile))
	if sf == nil {
		return fmt.Errorf("chain: %w", err)
	}
	c.sf = sf
	defer clear(payload)
	var cur chainFile
	if err == nil && payload != nil {
		if jerr := json.Unmarshal(payload, &cur); jerr != nil {
			err = jerr
		} else if verr := cur.valid(); verr != nil {
			err = verr
		}
	}
	prevStream := ""
	switch {
	case created:
		c.log.Info("chain: no state, starting a new stream", "dir", c.cfg.Dir)
	case err != nil:
		c.log.Warn("chain: state unusable, starting a new stream (reset)", "dir", c.cfg.Dir, "err", err)
		cur.wipe()
	case cur.AgentID != c.cfg.AgentID || cur.Audience != c.cfg.Audience || (c.idKeyID != "" && cur.IdentityKeyID != c.idKeyID):
		c.log.Warn("chain: state is for another agent, audience or identity key; starting a new stream",
			"stream", cur.StreamID, "agent", cur.AgentID, "aud", cur.Audience)
		prevStream = cur.StreamID
		cur.wipe()
	default:
		c.st = cur
		return c.recover(ctx)
	}
	return c.startStream(prevStream)
}

// recover finishes a Seal interrupted after the caller stored the batch and before the
// state was written, using cfg.LastStored.
func (c *Chain) recover(ctx context.Context) error {
	if c.cfg.LastStored == nil {
		return nil
	}
	env, err := c.cfg.LastStored(ctx)
	if err != nil {
		return fmt.Errorf("chain: last stored batch: %w", err)
	}
	if len(env) == 0 {
		return nil
	}
	payload, _, _, err := parseEnvelope(env)
	if err != nil {
		return fmt.Errorf("chain: last stored batch: %w", err)
	}
	h, err := ParseHeader(payload)
	if err != nil {
		return fmt.Errorf("chain: last stored batch: %w", err)
	}
	if h.StreamID != c.st.StreamID || h.Seq < c.st.Seq {
		return nil
	}
	nextPub := ed25519.NewKeyFromSeed(c.st.NextKey).Public().(ed25519.PublicKey)
	if h.Seq == c.st.Seq && bytes.Equal(h.NextPub, nextPub) && h.Prev == c.st.Prev {
		c.log.Info("chain: completing interrupted seal", "stream", h.StreamID, "seq", h.Seq)
		return c.advance(HeaderDigest(payload))
	}
	c.log.Warn("chain: stored batches are ahead of the chain state; starting a new stream (reset)",
		"stream", h.StreamID, "stored_seq", h.Seq, "state_seq", c.st.Seq)
	prev := c.st.StreamID
	c.st.wipe()
	return c.startStream(prev)
}

func (c *Chain) newSeed() ([]byte, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(c.cfg.Rand, seed); err != nil {
		return nil, fmt.Errorf("chain: random: %w", err)
	}
	return seed, nil
}

// startStream begins a new stream (needs the identity key for its seq 0).
func (c *Chain) startStream(prevStream string) error {
	if c.cfg.Identity == nil {
		return errors.New("chain: a new stream must be started and no identity key is configured")
	}
	var sid [16]byte
	if _, err := io.ReadFull(c.cfg.Rand, sid[:]); err != nil {
		return fmt.Errorf("chain: random: %w", err)
	}
	next, err := c.newSeed()
	if err != nil {
		return err
	}
	st := chainFile{V: 1, Audience: c.cfg.Audience, AgentID: c.cfg.AgentID, IdentityKeyID: c.idKeyID,
		StreamID: hex.EncodeToString(sid[:]), PrevStream: prevStream, NextKey: next}
	if err := c.writeState(&st); err != nil {
		return err
	}
	c.st = st
	c.started = true
	c.log.Info("chain: started stream", "stream", st.StreamID, "prev_stream", prevStream)
	return nil
}

// writeState persists st (see stateFile.write: the slot holding the previous state, and
// so the used key, is overwritten with zeros).
func (c *Chain) writeState(st *chainFile) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	defer clear(data)
	if err := c.sf.write(data); err != nil {
		return fmt.Errorf("chain: %w", err)
	}
	return nil
}

// advance moves the state past the batch whose header digest is d and persists it.
func (c *Chain) advance(d Digest) error {
	newNext, err := c.newSeed()
	if err != nil {
		return err
	}
	st := c.st
	st.Seq++
	st.Prev = d
	st.Key = st.NextKey
	st.NextKey = newNext
	st.PrevStream = ""
	if err := c.writeState(&st); err != nil {
		clear(newNext)
		return err
	}
	clear(c.st.Key)
	c.st = st
	return nil
}

// Info returns the chain's position.
func (c *Chain) Info() ChainInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ChainInfo{AgentID: c.st.AgentID, StreamID: c.st.StreamID, NextSeq: c.st.Seq, Prev: c.st.Prev,
		Started: c.started, PrevStream: c.st.PrevStream}
}

// ErrChainClosed is returned by Seal after Close.
var ErrChainClosed = errors.New("chain: closed")

// Seal signs body (NDJSON: one event per line, each line ending in '\n'; empty for a
// heartbeat) as the next batch of the stream and returns it.
//
// Order of effects: the header is signed; store (if non-nil) is called with the batch and
// MUST make it durable (spool append + fsync) before returning nil; only then is the state
// advanced durably and the signing key destroyed. If store fails, the state is unchanged
// and the error is returned: the batch must be discarded (a later Seal re-uses the seq).
// If the process dies after store succeeded and before the state write, OpenChain
// completes the step from cfg.LastStored. Without a store func the batch is sealed and the
// state advanced at once: the caller then owns making it durable.
func (c *Chain) Seal(ctx context.Context, body []byte, meta Meta, store func(context.Context, Batch) error) (Batch, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return Batch{}, ErrChainClosed
	}
	if c.broken != nil {
		return Batch{}, c.broken
	}
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	b, digest, err := c.build(ctx, body, meta)
	if err != nil {
		return Batch{}, err
	}
	if store != nil {
		if err := store(ctx, b); err != nil {
			return Batch{}, fmt.Errorf("chain: store seq %d: %w", c.st.Seq, err)
		}
	}
	if err := c.advance(digest); err != nil {
		// Sealing again would re-use the seq with another header: a fork. Refuse until
		// the chain is reopened, which recovers from LastStored.
		c.broken = fmt.Errorf("chain: seq %d stored but state not advanced; reopen the chain (OpenChain recovers it from LastStored): %w", c.st.Seq, err)
		return b, c.broken
	}
	return b, nil
}

// build makes and signs the batch for the current seq without changing any state.
func (c *Chain) build(ctx context.Context, body []byte, meta Meta) (Batch, Digest, error) {
	events := countEvents(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		return Batch{}, Digest{}, errors.New("chain: body must end with a newline")
	}
	h := Header{
		V: ProtocolVersion, Audience: c.st.Audience, AgentID: c.st.AgentID, StreamID: c.st.StreamID,
		PrevStream: c.st.PrevStream, Seq: c.st.Seq, Prev: c.st.Prev, RawLen: int64(len(body)), Events: events,
		Created: c.cfg.Now().UTC(), BodyEncoding: EncodingIdentity,
	}
	if events > 0 {
		if meta.FirstTime.IsZero() || meta.LastTime.IsZero() || meta.LastTime.Before(meta.FirstTime) {
			return Batch{}, Digest{}, errors.New("chain: meta needs FirstTime <= LastTime for a batch with events")
		}
		h.FirstTime, h.LastTime = meta.FirstTime.UTC(), meta.LastTime.UTC()
	}
	wire := body
	if events > 0 && c.cfg.Encoding != EncodingIdentity {
		var err error
		if wire, err = c.compress(body); err != nil {
			return Batch{}, Digest{}, err
		}
		h.BodyEncoding = c.cfg.Encoding
	}
	if wire == nil {
		wire = []byte{}
	}
	h.BodyLen = int64(len(wire))
	h.BodySHA256 = sha256.Sum256(wire)
	h.NextPub = ed25519.NewKeyFromSeed(c.st.NextKey).Public().(ed25519.PublicKey)

	var sign func([]byte) ([]byte, error)
	if c.st.Seq == 0 {
		if c.cfg.Identity == nil {
			return Batch{}, Digest{}, errors.New("chain: seq 0 needs the identity key")
		}
		h.KeyID = c.idKeyID
		sign = func(m []byte) ([]byte, error) { return c.cfg.Identity.Sign(ctx, m) }
	} else {
		priv := ed25519.NewKeyFromSeed(c.st.Key)
		defer clear(priv)
		h.KeyID = ed25519KeyID(priv.Public().(ed25519.PublicKey))
		sign = func(m []byte) ([]byte, error) { return ed25519.Sign(priv, m), nil }
	}
	payload, err := marshalHeader(&h)
	if err != nil {
		return Batch{}, Digest{}, fmt.Errorf("chain: %w", err)
	}
	sig, err := sign(PAE(PayloadType, payload))
	if err != nil {
		return Batch{}, Digest{}, fmt.Errorf("chain: sign seq %d: %w", h.Seq, err)
	}
	env, err := marshalEnvelope(payload, h.KeyID, sig)
	if err != nil {
		return Batch{}, Digest{}, fmt.Errorf("chain: %w", err)
	}
	return Batch{Envelope: env, Body: wire, Encoding: h.BodyEncoding}, HeaderDigest(payload), nil
}

// Reset abandons the current stream and starts a new one (seq 0 signed by the identity
// key, prev_stream naming the old stream). Central sees and alerts on it.
func (c *Chain) Reset(_ context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrChainClosed
	}
	prev := c.st.StreamID
	old := c.st
	if err := c.startStream(prev); err != nil {
		return err
	}
	old.wipe()
	return nil
}

// Close zeroes the in-memory keys. The state dir stays valid for the next OpenChain.
func (c *Chain) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.st.wipe()
	if c.sf != nil {
		_ = c.sf.close()
	}
	if c.zenc != nil {
		_ = c.zenc.Close()
	}
	return nil
}

func (c *Chain) compress(body []byte) ([]byte, error) {
	switch c.cfg.Encoding {
	case EncodingZstd:
		return c.zenc.EncodeAll(body, make([]byte, 0, len(body)/4+64)), nil
	case EncodingGzip:
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(body); err != nil {
			return nil, fmt.Errorf("chain: gzip: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("chain: gzip: %w", err)
		}
		return buf.Bytes(), nil
	}
	return body, nil
}
