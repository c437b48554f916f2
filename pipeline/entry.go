package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/provtrail/provtrail/collectors"
)

// A spool entry is one signed batch exactly as sent (signer.MarshalBatch)
// followed by the source positions it covers, so that the batch and the
// positions become durable in the same fsync:
//
//	"PTE1" | uint32 BE len(batch) | batch |
//	uint32 BE count | count x (uint16 BE len(key) | key | uint32 BE len(pos) | pos)
//
// Keys are collector instances ("TYPE/NAME"), sorted.
const entryMagic = "PTE1"

// Bounds on decoded entries.
const (
	maxEntryKeys   = 1 << 16
	maxPositionLen = 1 << 20
)

var errEntry = errors.New("bad spool entry")

func encodeEntry(batch []byte, pos map[string]collectors.Position) []byte {
	keys := make([]string, 0, len(pos))
	n := 4 + 4 + len(batch) + 4
	for k, v := range pos {
		keys = append(keys, k)
		n += 2 + len(k) + 4 + len(v)
	}
	sort.Strings(keys)
	b := make([]byte, 0, n)
	b = append(b, entryMagic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(batch)))
	b = append(b, batch...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = binary.BigEndian.AppendUint16(b, uint16(len(k)))
		b = append(b, k...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(pos[k])))
		b = append(b, pos[k]...)
	}
	return b
}

// decodeEntry splits an entry into the batch bytes (aliasing data) and the
// positions.
func decodeEntry(data []byte) (batch []byte, pos map[string]collectors.Position, err error) {
	bad := func(what string) ([]byte, map[string]collectors.Position, error) {
		return nil, nil, fmt.Errorf("%w: %s", errEntry, what)
	}
	if len(data) < 12 || string(data[:4]) != entryMagic {
		return bad("missing magic")
	}
	p := data[4:]
	n := uint64(binary.BigEndian.Uint32(p))
	p = p[4:]
	if n == 0 || uint64(len(p)) < n+4 {
		return bad("batch length exceeds entry")
	}
	batch, p = p[:n:n], p[n:]
	count := binary.BigEndian.Uint32(p)
	p = p[4:]
	if count > maxEntryKeys {
		return bad("too many positions")
	}
	pos = make(map[string]collectors.Position, count)
	for range count {
		if len(p) < 2 {
			return bad("truncated key length")
		}
		kl := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if len(p) < kl+4 {
			return bad("truncated key")
		}
		k := string(p[:kl])
		p = p[kl:]
		pl := uint64(binary.BigEndian.Uint32(p))
		p = p[4:]
		if pl > maxPositionLen || uint64(len(p)) < pl {
			return bad("truncated position")
		}
		pos[k] = append(collectors.Position(nil), p[:pl]...)
		p = p[pl:]
	}
	if len(p) != 0 {
		return bad("trailing bytes")
	}
	return batch, pos, nil
}
