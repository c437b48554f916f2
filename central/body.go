package central

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/provtrail/provtrail/signer"
)

// maxDecodedBody bounds a decoded body read back from the store.
const maxDecodedBody = 256 << 20

// zstdDecoder is shared: DecodeAll is safe for concurrent use.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(maxDecodedBody))
})

// DecodeBody returns the NDJSON of a stored batch body.
func DecodeBody(enc signer.Encoding, body []byte) ([]byte, error) {
	switch enc {
	case signer.EncodingIdentity, "":
		return body, nil
	case signer.EncodingZstd:
		d, err := zstdDecoder()
		if err != nil {
			return nil, err
		}
		return d.DecodeAll(body, nil)
	case signer.EncodingGzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxDecodedBody+1))
		if err != nil {
			return nil, err
		}
		if len(out) > maxDecodedBody {
			return nil, fmt.Errorf("gzip body decodes to more than %d bytes", maxDecodedBody)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown body encoding %q", enc)
}

// bodyLines splits NDJSON into its lines (without newlines).
func bodyLines(raw []byte) [][]byte {
	var out [][]byte
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			out = append(out, raw)
			break
		}
		out = append(out, raw[:i])
		raw = raw[i+1:]
	}
	return out
}

// bodyCache keeps the lines of recently read batch bodies.
type bodyCache struct {
	mu    sync.Mutex
	lines map[int64][][]byte
	order []int64
}

const bodyCacheSize = 32

func (c *bodyCache) get(id int64) ([][]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.lines[id]
	return l, ok
}

func (c *bodyCache) put(id int64, lines [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lines == nil {
		c.lines = map[int64][][]byte{}
	}
	if _, ok := c.lines[id]; ok {
		return
	}
	if len(c.order) >= bodyCacheSize {
		delete(c.lines, c.order[0])
		c.order = c.order[1:]
	}
	c.lines[id] = lines
	c.order = append(c.order, id)
}

// fillJSON sets each event's JSON from its batch body.
func (s *SQLite) fillJSON(ctx context.Context, evs []StoredEvent) error {
	for i := range evs {
		e := &evs[i]
		lines, ok := s.bodies.get(e.BatchID)
		if !ok {
			var body []byte
			var enc string
			err := s.db.QueryRowContext(ctx, `SELECT body, encoding FROM batches WHERE id = ?`, e.BatchID).Scan(&body, &enc)
			if err != nil {
				return fmt.Errorf("event %s: batch %d: %w", e.EventID, e.BatchID, err)
			}
			raw, err := DecodeBody(signer.Encoding(enc), body)
			if err != nil {
				return fmt.Errorf("event %s: batch %d body: %w", e.EventID, e.BatchID, err)
			}
			lines = bodyLines(raw)
			s.bodies.put(e.BatchID, lines)
		}
		if e.Ord < 0 || e.Ord >= len(lines) {
			return fmt.Errorf("event %s: line %d is not in batch %d's body (%d lines)", e.EventID, e.Ord, e.BatchID, len(lines))
		}
		e.JSON = lines[e.Ord]
	}
	return nil
}
