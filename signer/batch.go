package signer

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Batch is a signed batch as stored in the spool and sent to central: the DSSE envelope
// bytes (whose payload is the header), the body bytes as sent, and the body's declared
// encoding (which must equal the header's body_encoding).
//
// Implementations that store or forward a Batch must keep Envelope and Body byte for byte:
// a resent batch must be identical so that central can answer Duplicate.
type Batch struct {
	Envelope []byte
	Body     []byte
	Encoding Encoding
}

// Wire framing of a batch (HTTP request body, media type BatchMediaType, and a convenient
// spool record): see docs/protocol.md "HTTP encoding".
const (
	// BatchMediaType is the Content-Type of a POSTed batch.
	BatchMediaType = "application/vnd.provtrail.batch.v1"
	batchMagic     = "PTB1"
	// batchFrameOverhead is the size of the framing around envelope, encoding and body.
	batchFrameOverhead = 4 + 4 + 1 + 8
)

// FramedSize returns len(MarshalBatch(b)).
func (b Batch) FramedSize() int64 {
	return int64(batchFrameOverhead + len(b.Envelope) + len(b.Encoding) + len(b.Body))
}

// MarshalBatch frames b:
//
//	"PTB1" | uint32 BE len(envelope) | envelope | uint8 len(encoding) | encoding (ASCII) |
//	uint64 BE len(body) | body
func MarshalBatch(b Batch) ([]byte, error) {
	if len(b.Envelope) == 0 || len(b.Envelope) > 1<<31 {
		return nil, errors.New("marshal batch: envelope empty or too large")
	}
	if !b.Encoding.Valid() {
		return nil, fmt.Errorf("marshal batch: invalid encoding %q", b.Encoding)
	}
	out := make([]byte, 0, b.FramedSize())
	out = append(out, batchMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.Envelope)))
	out = append(out, b.Envelope...)
	out = append(out, byte(len(b.Encoding)))
	out = append(out, b.Encoding...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(b.Body)))
	out = append(out, b.Body...)
	return out, nil
}

// ErrFraming is wrapped by UnmarshalBatch errors about the framing itself.
var ErrFraming = errors.New("bad batch framing")

// UnmarshalBatch decodes MarshalBatch output, enforcing lim.MaxEnvelope and lim.MaxBody
// (zero values mean the Default limits) before allocating anything. The returned Batch
// aliases data. Errors are *VerdictError with Verdict TooLarge or Malformed.
func UnmarshalBatch(data []byte, lim Limits) (Batch, error) {
	lim = lim.withDefaults()
	bad := func(format string, args ...any) (Batch, error) {
		return Batch{}, &VerdictError{Verdict: Malformed, Reason: fmt.Errorf("%w: "+format, append([]any{ErrFraming}, args...)...).Error()}
	}
	if len(data) < batchFrameOverhead || string(data[:4]) != batchMagic {
		return bad("missing %q magic or too short", batchMagic)
	}
	p := data[4:]
	envLen := uint64(binary.BigEndian.Uint32(p))
	p = p[4:]
	if envLen > uint64(lim.MaxEnvelope) {
		return Batch{}, &VerdictError{Verdict: TooLarge, Reason: fmt.Sprintf("envelope is %d bytes, limit %d", envLen, lim.MaxEnvelope)}
	}
	if envLen == 0 || uint64(len(p)) < envLen+1 {
		return bad("envelope length %d exceeds data", envLen)
	}
	env := p[:envLen]
	p = p[envLen:]
	encLen := int(p[0])
	p = p[1:]
	if len(p) < encLen+8 {
		return bad("encoding length %d exceeds data", encLen)
	}
	enc := Encoding(p[:encLen])
	if !enc.Valid() {
		return bad("unknown encoding %q", truncate(string(enc), 40))
	}
	p = p[encLen:]
	bodyLen := binary.BigEndian.Uint64(p)
	p = p[8:]
	if bodyLen > uint64(lim.MaxBody) {
		return Batch{}, &VerdictError{Verdict: TooLarge, Reason: fmt.Sprintf("body is %d bytes, limit %d", bodyLen, lim.MaxBody)}
	}
	if uint64(len(p)) != bodyLen {
		return bad("body length %d, %d bytes follow", bodyLen, len(p))
	}
	return Batch{Envelope: env, Body: p, Encoding: enc}, nil
}
