package signer

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// PayloadType is the DSSE payloadType of a batch header (protocol v1).
const PayloadType = "application/vnd.provtrail.batch-header.v1+json"

// ProtocolVersion is the value of the header field "v".
const ProtocolVersion = 1

// Digest is a SHA-256 digest. It marshals to JSON and text as 64 lowercase hex characters.
type Digest [32]byte

// ZeroDigest is the prev of the first header (seq 0) of a stream.
var ZeroDigest Digest

// String returns the lowercase hex form.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is all zeros.
func (d Digest) IsZero() bool { return d == ZeroDigest }

// MarshalText implements encoding.TextMarshaler (64 lowercase hex characters).
func (d Digest) MarshalText() ([]byte, error) {
	out := make([]byte, 64)
	hex.Encode(out, d[:])
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts exactly 64 lowercase hex
// characters.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := parseHex32(b)
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// ParseDigest parses 64 lowercase hex characters.
func ParseDigest(s string) (Digest, error) { return parseHex32([]byte(s)) }

func parseHex32(b []byte) (Digest, error) {
	var d Digest
	if len(b) != 64 {
		return d, fmt.Errorf("digest must be 64 hex characters, got %d", len(b))
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return d, errors.New("digest must be lowercase hex")
		}
	}
	_, err := hex.Decode(d[:], b)
	return d, err
}

// Encoding is the declared encoding of a batch body.
type Encoding string

// Body encodings. The body digest and length are always over the bytes as sent.
const (
	EncodingIdentity Encoding = "identity" // raw NDJSON
	EncodingZstd     Encoding = "zstd"     // one or more zstd frames (RFC 8878)
	EncodingGzip     Encoding = "gzip"     // gzip (RFC 1952)
)

// Valid reports whether e is one of the defined encodings.
func (e Encoding) Valid() bool {
	return e == EncodingIdentity || e == EncodingZstd || e == EncodingGzip
}

// Header is the signed part of a batch (protocol v1). Its JSON form is the DSSE payload;
// the JSON field names are the wire format (docs/protocol.md). Verifiers never
// re-serialise a Header: they keep the exact payload bytes.
type Header struct {
	// V is the protocol version, always 1.
	V int `json:"v"`
	// Audience is the central/tenant id the batch is for ("aud").
	Audience string `json:"aud"`
	// AgentID names the agent (its enrolment name).
	AgentID string `json:"agent_id"`
	// StreamID is the agent's current stream: 32 lowercase hex characters (128 random bits).
	StreamID string `json:"stream_id"`
	// PrevStream is the stream this one replaces (a reset); only at seq 0, may be empty.
	PrevStream string `json:"prev_stream,omitempty"`
	// Seq counts batches in the stream from 0.
	Seq uint64 `json:"seq"`
	// Prev is the header digest of batch Seq-1 (ZeroDigest at seq 0).
	Prev Digest `json:"prev"`
	// BodySHA256 is the SHA-256 of the body bytes as sent (after compression).
	BodySHA256 Digest `json:"body_sha256"`
	// BodyLen is the length of the body bytes as sent.
	BodyLen int64 `json:"body_len"`
	// BodyEncoding says how the body is encoded ("identity", "zstd", "gzip").
	BodyEncoding Encoding `json:"body_encoding"`
	// RawLen is the length of the decoded NDJSON body.
	RawLen int64 `json:"raw_len"`
	// Events is the number of events (NDJSON lines) in the body; 0 for a heartbeat.
	Events int `json:"events"`
	// FirstTime and LastTime are the earliest and latest event time in the batch; both
	// omitted for a heartbeat.
	FirstTime time.Time `json:"first_time,omitzero"`
	LastTime  time.Time `json:"last_time,omitzero"`
	// KeyID is KeyID of the key that signed this header: the identity key at seq 0, else
	// the NextPub of batch Seq-1.
	KeyID string `json:"key_id"`
	// NextPub is the raw 32-byte Ed25519 public key that must sign batch Seq+1 (standard
	// base64 with padding in JSON).
	NextPub []byte `json:"next_pub"`
	// Created is when the agent sealed the batch (UTC).
	Created time.Time `json:"created"`
}

// IsHeartbeat reports whether h carries no events.
func (h *Header) IsHeartbeat() bool { return h.Events == 0 }

// IsStreamStart reports whether h is the first batch of a stream (signed by the identity key).
func (h *Header) IsStreamStart() bool { return h.Seq == 0 }

// HeaderDigest returns SHA-256 of the exact DSSE payload bytes of a header.
func HeaderDigest(payload []byte) Digest { return sha256.Sum256(payload) }

// Envelope is a DSSE envelope as sent.
type Envelope struct {
	PayloadType string              `json:"payloadType"`
	Payload     []byte              `json:"payload"` // standard base64 in JSON
	Signatures  []EnvelopeSignature `json:"signatures"`
}

// EnvelopeSignature is one DSSE signature.
type EnvelopeSignature struct {
	KeyID string `json:"keyid"`
	Sig   []byte `json:"sig"` // standard base64 in JSON
}

// PAE returns the DSSE v1 pre-authentication encoding that is signed:
// "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII decimal.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(payloadType) + len(payload) + 32)
	fmt.Fprintf(&b, "DSSEv1 %d %s %d ", len(payloadType), payloadType, len(payload))
	b.Write(payload)
	return b.Bytes()
}

// marshalHeader returns the payload bytes of h (encoding/json, fields in struct order, no
// insignificant whitespace).
func marshalHeader(h *Header) ([]byte, error) {
	if len(h.NextPub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("header next_pub must be %d bytes", ed25519.PublicKeySize)
	}
	return json.Marshal(h)
}

// marshalEnvelope encodes a single-signature DSSE envelope.
func marshalEnvelope(payload []byte, keyID string, sig []byte) ([]byte, error) {
	return json.Marshal(Envelope{
		PayloadType: PayloadType,
		Payload:     payload,
		Signatures:  []EnvelopeSignature{{KeyID: keyID, Sig: sig}},
	})
}

// rawEnvelope mirrors Envelope with strings so both base64 alphabets can be accepted.
type rawEnvelope struct {
	PayloadType *string `json:"payloadType"`
	Payload     *string `json:"payload"`
	Signatures  []struct {
		KeyID *string `json:"keyid"`
		Sig   *string `json:"sig"`
	} `json:"signatures"`
}

// decodeB64 accepts standard or URL-safe base64 with padding, as DSSE allows.
func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err == nil {
		return b, nil
	}
	b, err2 := base64.URLEncoding.DecodeString(s)
	if err2 == nil {
		return b, nil
	}
	return nil, err
}

// parseEnvelope strictly decodes a DSSE envelope: exactly the three fields, the v1
// payloadType, exactly one signature with keyid and sig.
func parseEnvelope(data []byte) (payload []byte, keyID string, sig []byte, err error) {
	if err := checkJSONObject(data); err != nil {
		return nil, "", nil, fmt.Errorf("envelope: %w", err)
	}
	var raw rawEnvelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, "", nil, fmt.Errorf("envelope: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "", nil, errors.New("envelope: trailing data after JSON object")
	}
	switch {
	case raw.PayloadType == nil || raw.Payload == nil || raw.Signatures == nil:
		return nil, "", nil, errors.New("envelope: missing payloadType, payload or signatures")
	case *raw.PayloadType != PayloadType:
		return nil, "", nil, fmt.Errorf("envelope: payloadType %q, want %q", truncate(*raw.PayloadType, 80), PayloadType)
	case len(raw.Signatures) != 1:
		return nil, "", nil, fmt.Errorf("envelope: %d signatures, want exactly 1", len(raw.Signatures))
	case raw.Signatures[0].KeyID == nil || raw.Signatures[0].Sig == nil:
		return nil, "", nil, errors.New("envelope: signature without keyid or sig")
	}
	payload, err = decodeB64(*raw.Payload)
	if err != nil {
		return nil, "", nil, fmt.Errorf("envelope: payload: %w", err)
	}
	sig, err = decodeB64(*raw.Signatures[0].Sig)
	if err != nil {
		return nil, "", nil, fmt.Errorf("envelope: sig: %w", err)
	}
	return payload, *raw.Signatures[0].KeyID, sig, nil
}

// rawHeader uses pointers so that missing required fields are detected.
type rawHeader struct {
	V            *int      `json:"v"`
	Audience     *string   `json:"aud"`
	AgentID      *string   `json:"agent_id"`
	StreamID     *string   `json:"stream_id"`
	PrevStream   *string   `json:"prev_stream"`
	Seq          *uint64   `json:"seq"`
	Prev         *Digest   `json:"prev"`
	BodySHA256   *Digest   `json:"body_sha256"`
	BodyLen      *int64    `json:"body_len"`
	BodyEncoding *Encoding `json:"body_encoding"`
	RawLen       *int64    `json:"raw_len"`
	Events       *int      `json:"events"`
	FirstTime    *string   `json:"first_time"`
	LastTime     *string   `json:"last_time"`
	KeyID        *string   `json:"key_id"`
	NextPub      *[]byte   `json:"next_pub"`
	Created      *string   `json:"created"`
}

// ParseHeader strictly decodes header payload bytes: a JSON object with no duplicate or
// unknown fields, every required field present and well formed. It does not verify
// anything cryptographic.
func ParseHeader(payload []byte) (Header, error) {
	var h Header
	if err := checkJSONObject(payload); err != nil {
		return h, fmt.Errorf("header: %w", err)
	}
	var r rawHeader
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return h, fmt.Errorf("header: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return h, errors.New("header: trailing data after JSON object")
	}
	missing := []string{}
	req := map[string]bool{
		"v": r.V != nil, "aud": r.Audience != nil, "agent_id": r.AgentID != nil, "stream_id": r.StreamID != nil,
		"seq": r.Seq != nil, "prev": r.Prev != nil, "body_sha256": r.BodySHA256 != nil, "body_len": r.BodyLen != nil,
		"body_encoding": r.BodyEncoding != nil, "raw_len": r.RawLen != nil, "events": r.Events != nil,
		"key_id": r.KeyID != nil, "next_pub": r.NextPub != nil, "created": r.Created != nil,
	}
	for _, name := range []string{"v", "aud", "agent_id", "stream_id", "seq", "prev", "body_sha256", "body_len", "body_encoding", "raw_len", "events", "key_id", "next_pub", "created"} {
		if !req[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return h, fmt.Errorf("header: missing field(s) %s", strings.Join(missing, ", "))
	}
	h = Header{
		V: *r.V, Audience: *r.Audience, AgentID: *r.AgentID, StreamID: *r.StreamID, Seq: *r.Seq,
		Prev: *r.Prev, BodySHA256: *r.BodySHA256, BodyLen: *r.BodyLen, BodyEncoding: *r.BodyEncoding,
		RawLen: *r.RawLen, Events: *r.Events, KeyID: *r.KeyID, NextPub: *r.NextPub,
	}
	if r.PrevStream != nil {
		h.PrevStream = *r.PrevStream
	}
	var err error
	if h.Created, err = parseUTC("created", *r.Created); err != nil {
		return Header{}, err
	}
	if r.FirstTime != nil {
		if h.FirstTime, err = parseUTC("first_time", *r.FirstTime); err != nil {
			return Header{}, err
		}
	}
	if r.LastTime != nil {
		if h.LastTime, err = parseUTC("last_time", *r.LastTime); err != nil {
			return Header{}, err
		}
	}
	if err := h.check(); err != nil {
		return Header{}, fmt.Errorf("header: %w", err)
	}
	return h, nil
}

// parseUTC parses an RFC 3339 time that must be in UTC with the "Z" designator.
func parseUTC(field, s string) (time.Time, error) {
	if !strings.HasSuffix(s, "Z") {
		return time.Time{}, fmt.Errorf("header: %s must be RFC 3339 in UTC ending in Z", field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("header: %s: %w", field, err)
	}
	return t, nil
}

// check validates field values of a decoded header.
func (h *Header) check() error {
	switch {
	case h.V != ProtocolVersion:
		return fmt.Errorf("unsupported protocol version %d", h.V)
	case h.Audience == "" || len(h.Audience) > 256:
		return errors.New("aud must be 1..256 bytes")
	case h.AgentID == "" || len(h.AgentID) > 256:
		return errors.New("agent_id must be 1..256 bytes")
	case !isStreamID(h.StreamID):
		return errors.New("stream_id must be 32 lowercase hex characters")
	case h.PrevStream != "" && !isStreamID(h.PrevStream):
		return errors.New("prev_stream must be 32 lowercase hex characters")
	case h.PrevStream != "" && h.Seq != 0:
		return errors.New("prev_stream is only allowed at seq 0")
	case h.Seq >= 1<<53 || h.BodyLen >= 1<<53 || h.RawLen >= 1<<53:
		return errors.New("seq, body_len and raw_len must be below 2^53")
	case h.Seq == 0 && !h.Prev.IsZero():
		return errors.New("seq 0 must have an all-zero prev")
	case h.Seq > 0 && h.Prev.IsZero():
		return errors.New("prev must not be all zero after seq 0")
	case h.BodyLen < 0 || h.RawLen < 0 || h.Events < 0:
		return errors.New("body_len, raw_len and events must not be negative")
	case !h.BodyEncoding.Valid():
		return fmt.Errorf("unknown body_encoding %q", truncate(string(h.BodyEncoding), 40))
	case h.BodyEncoding == EncodingIdentity && h.BodyLen != h.RawLen:
		return errors.New("identity body: body_len must equal raw_len")
	case (h.Events == 0) != (h.RawLen == 0):
		return errors.New("events is 0 exactly when raw_len is 0")
	case h.Events > 0 && (h.FirstTime.IsZero() || h.LastTime.IsZero()):
		return errors.New("first_time and last_time are required when events > 0")
	case h.Events == 0 && (!h.FirstTime.IsZero() || !h.LastTime.IsZero()):
		return errors.New("first_time and last_time must be absent in a heartbeat")
	case h.LastTime.Before(h.FirstTime):
		return errors.New("last_time is before first_time")
	case !isHex64(h.KeyID):
		return errors.New("key_id must be 64 lowercase hex characters")
	case len(h.NextPub) != ed25519.PublicKeySize:
		return fmt.Errorf("next_pub must be %d bytes", ed25519.PublicKeySize)
	case h.Created.IsZero():
		return errors.New("created must be set")
	}
	return nil
}

func isStreamID(s string) bool { return len(s) == 32 && isLowerHex(s) }
func isHex64(s string) bool    { return len(s) == 64 && isLowerHex(s) }
func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkJSONObject verifies data is one JSON object whose member names are unique at every
// nesting level (encoding/json would silently keep the last duplicate; another
// implementation could keep the first, so duplicates are rejected).
func checkJSONObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New("not a JSON object")
	}
	return checkObjectKeys(dec, 1)
}

func checkObjectKeys(dec *json.Decoder, depth int) error {
	if depth > 8 {
		return errors.New("JSON nested too deeply")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("object key is not a string")
		}
		if seen[key] {
			return fmt.Errorf("duplicate field %q", truncate(key, 40))
		}
		seen[key] = true
		if err := skipValue(dec, depth); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

func skipValue(dec *json.Decoder, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return checkObjectKeys(dec, depth+1)
	case '[':
		if depth > 8 {
			return errors.New("JSON nested too deeply")
		}
		for dec.More() {
			if err := skipValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err := dec.Token()
		return err
	}
	return fmt.Errorf("unexpected %v", d)
}
