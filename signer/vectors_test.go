package signer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors")

const (
	vecAudience = "central.example/tenant-a"
	vecAgent    = "host-1"
)

// vectorFile is the JSON form of one test vector (docs/protocol.md "Test vectors").
type vectorFile struct {
	Description string        `json:"description"`
	Audience    string        `json:"audience"`
	AgentID     string        `json:"agent_id"`
	IdentityKey string        `json:"identity_key"`
	Limits      *vectorLimits `json:"limits,omitempty"`
	Steps       []vectorStep  `json:"steps"`
}

type vectorLimits struct {
	MaxEnvelope     int   `json:"max_envelope"`
	MaxBody         int64 `json:"max_body"`
	MaxDecompressed int64 `json:"max_decompressed"`
	MaxEvents       int   `json:"max_events"`
}

type vectorStep struct {
	Note         string  `json:"note"`
	Batch        []byte  `json:"batch"`
	Verdict      Verdict `json:"verdict"`
	HeaderDigest string  `json:"header_digest,omitempty"`
}

func (v *vectorFile) limits() Limits {
	if v.Limits == nil {
		return Limits{}
	}
	return Limits{MaxEnvelope: v.Limits.MaxEnvelope, MaxBody: v.Limits.MaxBody, MaxDecompressed: v.Limits.MaxDecompressed, MaxEvents: v.Limits.MaxEvents}
}

// vecBuilder collects the steps of one vector.
type vecBuilder struct {
	t *testing.T
	v vectorFile
}

func newVec(t *testing.T, desc string) *vecBuilder {
	return &vecBuilder{t: t, v: vectorFile{Description: desc, Audience: vecAudience, AgentID: vecAgent, IdentityKey: testPubPEM(t, "identity")}}
}

func (vb *vecBuilder) step(note string, b Batch, want Verdict) {
	vb.raw(note, frame(vb.t, b), want)
}

func (vb *vecBuilder) raw(note string, data []byte, want Verdict) {
	s := vectorStep{Note: note, Batch: data, Verdict: want}
	if b, err := UnmarshalBatch(data, vb.v.limits()); err == nil {
		if payload, _, _, err := parseEnvelope(b.Envelope); err == nil {
			s.HeaderDigest = HeaderDigest(payload).String()
		}
	}
	vb.v.Steps = append(vb.v.Steps, s)
}

// agent returns a deterministic agent chain for the vectors.
func vecAgentSim(t *testing.T, name string, enc Encoding) *sim {
	return newSim(t, filepath.Join(t.TempDir(), name), ChainConfig{
		Audience: vecAudience, AgentID: vecAgent, Identity: loadTestKey(t, "identity"), Encoding: enc,
	}, "vectors/"+name)
}

// buildVectors makes every vector from real chains and the keygen-made test keys.
// Ed25519 signatures and the deterministic randomness make the output reproducible.
func buildVectors(t *testing.T) map[string]*vectorFile {
	out := map[string]*vectorFile{}
	add := func(name string, vb *vecBuilder) { out[name] = &vb.v }

	{ // chain: a short valid chain with every body encoding.
		vb := newVec(t, "A valid chain: seq 0 signed by the identity key, seqs 1-3 by the chain keys; zstd, gzip and identity bodies.")
		a := vecAgentSim(t, "chain", EncodingZstd)
		vb.step("seq 0: stream start, 3 events, zstd", a.seal(3, 0), Accepted)
		vb.step("seq 1: 5 events, zstd", a.seal(5, 3), Accepted)
		a.chain.cfg.Encoding = EncodingIdentity
		vb.step("seq 2: 2 events, identity", a.seal(2, 8), Accepted)
		a.chain.cfg.Encoding = EncodingGzip
		vb.step("seq 3: 4 events, gzip", a.seal(4, 10), Accepted)
		add("chain", vb)
	}
	{ // heartbeat
		vb := newVec(t, "Heartbeats: empty bodies (events 0) keep the chain going.")
		a := vecAgentSim(t, "heartbeat", EncodingIdentity)
		vb.step("seq 0: heartbeat as stream start", a.seal(0, 0), Accepted)
		vb.step("seq 1: 1 event", a.seal(1, 0), Accepted)
		vb.step("seq 2: heartbeat", a.seal(0, 0), Accepted)
		vb.step("seq 3: heartbeat", a.seal(0, 0), Accepted)
		add("heartbeat", vb)
	}
	{ // reset
		vb := newVec(t, "Stream reset: the agent lost its state and starts a new stream signed by the identity key, naming the old stream in prev_stream.")
		a := vecAgentSim(t, "reset", EncodingIdentity)
		vb.step("stream A seq 0", a.seal(1, 0), Accepted)
		vb.step("stream A seq 1", a.seal(1, 1), Accepted)
		if err := a.chain.Reset(context.Background()); err != nil {
			t.Fatal(err)
		}
		vb.step("stream B seq 0 (prev_stream = A)", a.seal(1, 2), Accepted)
		vb.step("stream B seq 1", a.seal(0, 0), Accepted)
		add("reset", vb)
	}
	{ // duplicate / replay
		vb := newVec(t, "Replays: a batch sent again (same seq, same header digest) is a duplicate, also for older seqs.")
		a := vecAgentSim(t, "duplicate", EncodingIdentity)
		b0, b1, b2 := a.seal(2, 0), a.seal(2, 2), a.seal(2, 4)
		vb.step("seq 0", b0, Accepted)
		vb.step("seq 1", b1, Accepted)
		vb.step("seq 1 again", b1, Duplicate)
		vb.step("seq 2", b2, Accepted)
		vb.step("seq 0 replayed", b0, Duplicate)
		vb.step("seq 1 replayed", b1, Duplicate)
		add("duplicate", vb)
	}
	{ // gap and reordering
		vb := newVec(t, "A reordered pair: seq 2 before seq 1 is a gap (held), then both are accepted in order.")
		a := vecAgentSim(t, "gap", EncodingIdentity)
		b0, b1, b2 := a.seal(1, 0), a.seal(1, 1), a.seal(1, 2)
		vb.step("seq 0", b0, Accepted)
		vb.step("seq 2 arrives first", b2, Gap)
		vb.step("seq 1", b1, Accepted)
		vb.step("seq 2 resent after the gap is filled", b2, Accepted)
		add("gap", vb)
	}
	{ // truncation with a stolen state
		vb := newVec(t, "Truncation: a thief copies the state dir after seq 2 was sealed, deletes seq 2 from the spool and continues. The stolen keys cannot sign seq 2: the gap can never be filled validly.")
		a := vecAgentSim(t, "truncation", EncodingIdentity)
		b0, b1, _ := a.seal(1, 0), a.seal(1, 1), a.seal(1, 2)
		thief := a.clone(filepath.Join(t.TempDir(), "thief"), "vectors/thief")
		vb.step("seq 0", b0, Accepted)
		vb.step("seq 1", b1, Accepted)
		vb.step("thief's seq 3 (seq 2 deleted)", thief.seal(1, 100), Gap)
		cur, _ := thief.stolen()
		forged := resign(t, b1, func(h *Header) {
			h.Seq = 2
			h.Prev = HeaderDigest(mustPayload(t, b1))
			h.KeyID = ed25519KeyID(cur.Public().(ed25519.PublicKey))
		}, edSign(cur))
		vb.step("thief's seq 2 signed with a stolen (later) key", forged, UnknownKey)
		add("truncation", vb)
	}
	{ // fork
		vb := newVec(t, "Forks: a clone of the agent state signs a different seq 1 with the same key; and a header at the expected seq with a wrong prev.")
		a := vecAgentSim(t, "fork", EncodingIdentity)
		b0 := a.seal(1, 0)
		clone := a.clone(filepath.Join(t.TempDir(), "clone"), "vectors/clone")
		cur1, _ := clone.stolen() // key of seq 1 (nil: seq 1 is signed by the next key)
		_ = cur1
		b1 := a.seal(1, 1)
		c1 := clone.seal(1, 50)
		vb.step("seq 0", b0, Accepted)
		vb.step("seq 1", b1, Accepted)
		vb.step("clone's seq 1: same seq, same key, other content", c1, Fork)
		key2, _ := a.stolen()
		b2 := a.seal(1, 2)
		badPrev := resign(t, b2, func(h *Header) { h.Prev = HeaderDigest(mustPayload(t, c1)) }, edSign(key2))
		vb.step("seq 2 signed by the right key but prev = clone's seq 1", badPrev, Fork)
		vb.step("the real seq 2", b2, Accepted)
		add("fork", vb)
	}
	{ // bad signature
		vb := newVec(t, "Bad signatures: a header edited after signing; a header signed with an old (already used) key but claiming the expected key id.")
		a := vecAgentSim(t, "badsig", EncodingIdentity)
		b0 := a.seal(1, 0)
		key1, _ := a.stolen()
		b1 := a.seal(1, 1)
		b2 := a.seal(1, 2)
		vb.step("seq 0", b0, Accepted)
		vb.step("seq 1", b1, Accepted)
		edited := resign(t, b2, func(h *Header) { h.Created = h.Created.Add(1) }, nil)
		edited.Envelope = swapSig(t, edited.Envelope, b2.Envelope)
		vb.step("seq 2 with created changed after signing", edited, BadSignature)
		old := resign(t, b2, func(h *Header) {}, edSign(key1))
		vb.step("seq 2 signed with seq 1's (used) key, claiming seq 2's key id", old, BadSignature)
		vb.step("the real seq 2", b2, Accepted)
		add("bad_signature", vb)
	}
	{ // unknown key
		vb := newVec(t, "Unknown keys: a stream start signed by a key that is not the agent's identity; a header signed with an old (already used) key naming that key.")
		other := loadTestKey(t, "other")
		a := vecAgentSim(t, "unknownkey", EncodingIdentity)
		b0 := a.seal(1, 0)
		key1, _ := a.stolen()
		b1 := a.seal(1, 1)
		b2 := a.seal(1, 2)
		start := resign(t, b0, func(h *Header) { h.KeyID = other.KeyID() }, idSign(t, other))
		vb.step("seq 0 signed by another identity key", start, UnknownKey)
		vb.step("seq 0", b0, Accepted)
		vb.step("seq 1", b1, Accepted)
		old := resign(t, b2, func(h *Header) { h.KeyID = ed25519KeyID(key1.Public().(ed25519.PublicKey)) }, edSign(key1))
		vb.step("seq 2 signed with seq 1's (used) key", old, UnknownKey)
		vb.step("the real seq 2", b2, Accepted)
		add("unknown_key", vb)
	}
	{ // wrong audience
		vb := newVec(t, "Wrong audience: a valid batch sealed for another central/tenant.")
		o := newSim(t, filepath.Join(t.TempDir(), "aud"), ChainConfig{Audience: "central.example/tenant-b", AgentID: vecAgent, Identity: loadTestKey(t, "identity")}, "vectors/aud")
		vb.step("seq 0 for tenant-b", o.seal(1, 0), WrongAudience)
		add("wrong_audience", vb)
	}
	{ // body mismatch
		vb := newVec(t, "Body mismatch: one byte of the body changed; a body shorter than body_len; a signed header whose event count differs from the body.")
		a := vecAgentSim(t, "body", EncodingIdentity)
		b0 := a.seal(2, 0)
		key1, _ := a.stolen()
		b1 := a.seal(3, 2)
		vb.step("seq 0", b0, Accepted)
		flipped := b1
		flipped.Body = bytes.Clone(b1.Body)
		flipped.Body[17] ^= 0x01
		vb.step("seq 1 with one body byte changed", flipped, BodyMismatch)
		short := b1
		short.Body = b1.Body[:len(b1.Body)-1]
		vb.step("seq 1 with the last body byte cut", short, BodyMismatch)
		lie := resign(t, b1, func(h *Header) { h.Events = 2 }, edSign(key1))
		vb.step("seq 1 re-signed claiming 2 events for 3 lines", lie, BodyMismatch)
		vb.step("the real seq 1", b1, Accepted)
		add("body_mismatch", vb)
	}
	{ // malformed
		vb := newVec(t, "Malformed batches: framing, envelope and header violations. None changes the stream state.")
		a := vecAgentSim(t, "malformed", EncodingIdentity)
		b0 := a.seal(1, 0)
		good := frame(t, b0)
		vb.raw("bad magic", append([]byte("PTB2"), good[4:]...), Malformed)
		vb.raw("framing truncated", good[:len(good)-1], Malformed)
		vb.raw("trailing byte after the body", append(bytes.Clone(good), '\n'), Malformed)
		encMismatch := b0
		encMismatch.Encoding = EncodingGzip
		vb.step("declared encoding differs from body_encoding", encMismatch, Malformed)
		notJSON := b0
		notJSON.Envelope = []byte("not json")
		vb.step("envelope is not JSON", notJSON, Malformed)
		wrongType := b0
		wrongType.Envelope = bytes.Replace(b0.Envelope, []byte("batch-header.v1"), []byte("batch-header.v9"), 1)
		vb.step("wrong payloadType", wrongType, Malformed)
		twoSigs := b0
		twoSigs.Envelope = twoSignatures(t, b0.Envelope)
		vb.step("two signatures", twoSigs, Malformed)
		idk := loadTestKey(t, "identity")
		missing := forgeRaw(t, b0, func(m map[string]any) { delete(m, "body_sha256") }, idSign(t, idk))
		vb.step("header without body_sha256 (signed)", missing, Malformed)
		unknown := forgeRaw(t, b0, func(m map[string]any) { m["extra"] = true }, idSign(t, idk))
		vb.step("header with an unknown field (signed)", unknown, Malformed)
		dup := forgeDupField(t, b0, idSign(t, idk))
		vb.step("header with a duplicate field (signed)", dup, Malformed)
		vb.step("seq 0 (state unchanged by the above)", b0, Accepted)
		add("malformed", vb)
	}
	{ // too large and decompression bombs
		vb := newVec(t, "Limits: body over max_body, raw_len over max_decompressed, and zstd/gzip bombs whose output exceeds the declared raw_len; all rejected before (or while reading at most raw_len+1 bytes of) decompression.")
		vb.v.Limits = &vectorLimits{MaxEnvelope: 4096, MaxBody: 16 << 10, MaxDecompressed: 1 << 20, MaxEvents: 1000}
		a := vecAgentSim(t, "toolarge", EncodingIdentity)
		b0 := a.seal(1, 0)
		key1, _ := a.stolen()
		vb.step("seq 0", b0, Accepted)
		big := a.seal(80, 1) // ~18 KB identity body > 16 KiB
		vb.step("seq 1 with a body over max_body", big, TooLarge)
		zbomb := zstdBomb(t, 64<<20)
		h1 := decodeBatchHeader(t, big)
		claimBig := func(h *Header) {
			h.BodyEncoding, h.BodyLen, h.BodySHA256, h.RawLen, h.Events = EncodingZstd, int64(len(zbomb)), sha256.Sum256(zbomb), 1<<30, 1
		}
		hb := h1
		claimBig(&hb)
		vb.step("seq 1 zstd bomb declaring raw_len 1 GiB", forge(t, hb, zbomb, edSign(key1)), TooLarge)
		hs := h1
		claimBig(&hs)
		hs.RawLen = 1000
		vb.step("seq 1 zstd bomb (one 64 MiB frame, window over the decoder limit) declaring raw_len 1000", forge(t, hs, zbomb, edSign(key1)), TooLarge)
		sbomb := zstdStreamBomb(t, 64<<20)
		hw := h1
		hw.BodyEncoding, hw.BodyLen, hw.BodySHA256, hw.RawLen, hw.Events = EncodingZstd, int64(len(sbomb)), sha256.Sum256(sbomb), 1000, 1
		vb.step("seq 1 zstd bomb (64 MiB of zeros, 1 MiB window) declaring raw_len 1000", forge(t, hw, sbomb, edSign(key1)), TooLarge)
		gbomb := gzipBomb(t, 16<<20)
		hg := h1
		hg.BodyEncoding, hg.BodyLen, hg.BodySHA256, hg.RawLen, hg.Events = EncodingGzip, int64(len(gbomb)), sha256.Sum256(gbomb), 1000, 1
		vb.step("seq 1 gzip bomb (16 MiB of zeros) declaring raw_len 1000", forge(t, hg, gbomb, edSign(key1)), TooLarge)
		hu := h1
		hu.BodyEncoding, hu.BodyLen, hu.BodySHA256, hu.RawLen, hu.Events = EncodingZstd, int64(len(zbomb)), sha256.Sum256(zbomb), 1000, 1
		vb.step("seq 1 zstd bomb, unsigned", forge(t, hu, zbomb, nil), BadSignature)
		vb.step("seq 1 heartbeat", a.seal(0, 0), Gap) // the chain moved on: seq 1 was `big`
		add("too_large", vb)
	}
	return out
}

func mustPayload(t testing.TB, b Batch) []byte {
	payload, _, _, err := parseEnvelope(b.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// swapSig puts the signature of src into env (so env's header is not what was signed).
func swapSig(t testing.TB, env, src []byte) []byte {
	var e, s Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(src, &s); err != nil {
		t.Fatal(err)
	}
	e.Signatures = s.Signatures
	out, _ := json.Marshal(e)
	return out
}

func twoSignatures(t testing.TB, env []byte) []byte {
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	e.Signatures = append(e.Signatures, e.Signatures[0])
	out, _ := json.Marshal(e)
	return out
}

// forgeRaw edits the header as a generic JSON object and signs the result.
func forgeRaw(t testing.TB, b Batch, edit func(map[string]any), sign func([]byte) []byte) Batch {
	var m map[string]any
	if err := json.Unmarshal(mustPayload(t, b), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	payload, _ := json.Marshal(m)
	keyID, _ := m["key_id"].(string)
	env, err := marshalEnvelope(payload, keyID, sign(PAE(PayloadType, payload)))
	if err != nil {
		t.Fatal(err)
	}
	return Batch{Envelope: env, Body: b.Body, Encoding: b.Encoding}
}

// forgeDupField appends a second "events" member to the header and signs it.
func forgeDupField(t testing.TB, b Batch, sign func([]byte) []byte) Batch {
	p := mustPayload(t, b)
	payload := append(bytes.TrimSuffix(bytes.Clone(p), []byte("}")), []byte(`,"events":7}`)...)
	h := decodeBatchHeader(t, b)
	env, err := marshalEnvelope(payload, h.KeyID, sign(PAE(PayloadType, payload)))
	if err != nil {
		t.Fatal(err)
	}
	return Batch{Envelope: env, Body: b.Body, Encoding: b.Encoding}
}

func zstdBomb(t testing.TB, n int) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(make([]byte, n), nil)
}

// zstdStreamBomb writes n zeros through a streaming encoder with a 1 MiB window, so the
// frame does not declare its size and decodes within the window limit.
func zstdStreamBomb(t testing.TB, n int) []byte {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBomb(t testing.TB, n int) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// replayVector runs the vector's steps through a fresh central and checks each verdict.
func replayVector(t *testing.T, name string, v *vectorFile) {
	t.Helper()
	c := newCentral(t, v.Audience, v.AgentID, v.IdentityKey, v.limits())
	for i, s := range v.Steps {
		res, err := c.receive(context.Background(), s.Batch)
		if err != nil {
			t.Fatalf("%s step %d (%s): %v", name, i, s.Note, err)
		}
		if res.Verdict != s.Verdict {
			t.Errorf("%s step %d (%s): verdict %v (%s), want %v", name, i, s.Note, res.Verdict, res.Reason, s.Verdict)
		}
		if s.HeaderDigest != "" && res.Verdict != Malformed && res.Verdict != TooLarge && res.HeaderDigest.String() != s.HeaderDigest {
			t.Errorf("%s step %d: header digest %s, vector says %s", name, i, res.HeaderDigest, s.HeaderDigest)
		}
	}
}

var vectorNames = []string{"chain", "heartbeat", "reset", "duplicate", "gap", "truncation", "fork", "bad_signature", "unknown_key", "wrong_audience", "body_mismatch", "malformed", "too_large"}

// TestVectors builds every vector from real chains, replays it, and checks the files in
// testdata/vectors (rewritten with -update) give the same verdicts.
func TestVectors(t *testing.T) {
	built := buildVectors(t)
	if len(built) != len(vectorNames) {
		t.Fatalf("built %d vectors, want %d", len(built), len(vectorNames))
	}
	seen := map[Verdict]bool{}
	for _, name := range vectorNames {
		v := built[name]
		if v == nil {
			t.Fatalf("vector %s not built", name)
		}
		for _, s := range v.Steps {
			seen[s.Verdict] = true
		}
		t.Run("built/"+name, func(t *testing.T) { replayVector(t, name, v) })
		path := filepath.Join("testdata", "vectors", name+".json")
		if *update {
			data, err := json.MarshalIndent(v, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Run("file/"+name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestVectors -update)", err)
			}
			var fv vectorFile
			if err := json.Unmarshal(data, &fv); err != nil {
				t.Fatal(err)
			}
			replayVector(t, name, &fv)
		})
	}
	for v := Accepted; v <= TooLarge; v++ {
		if !seen[v] {
			t.Errorf("no vector step has verdict %v", v)
		}
	}
}
