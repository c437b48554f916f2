package central

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/provtrail/provtrail/central/entitlements"
)

// The entitlement history is stored one row per index transaction: the
// transaction's changes, in order, in one blob (appendChanges). It is only
// ever read whole, in order, to replay it (EntitlementDrift), so a row per
// change would cost a b-tree insert and eleven bound values per change
// for nothing.
//
// A change is encoded as: time (varint, Unix ns), event id, op (uvarint), system, scope, kind, name, user, granted by (strings: a
// uvarint length and the bytes), log index (varint).

// appendChanges appends the encoding of changes to buf.
func appendChanges(buf []byte, changes []entChange) []byte {
	size := len(buf)
	for _, ec := range changes {
		h := &ec.c.Holding
		size += 3*binary.MaxVarintLen64 + 7 + len(ec.eventID) + len(h.System) + len(h.Scope) + len(h.Kind) + len(h.Name) + len(h.User) + len(h.GrantedBy)
	}
	buf = slices.Grow(buf, size-len(buf))
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	for _, ec := range changes {
		h := ec.c.Holding
		buf = binary.AppendVarint(buf, ec.time)
		str(ec.eventID)
		buf = binary.AppendUvarint(buf, uint64(ec.c.Op))
		str(h.System)
		str(h.Scope)
		str(string(h.Kind))
		str(h.Name)
		str(h.User)
		str(h.GrantedBy)
		buf = binary.AppendVarint(buf, h.LogIndex)
	}
	return buf
}

var errBadHistory = errors.New("malformed entitlement history")

// decodeChanges calls fn for each change encoded in buf, in order, with
// the change's time (Unix ns); Holding.Since is left unset.
func decodeChanges(buf []byte, fn func(t int64, c entitlements.Change)) error {
	bad := func(what string) error {
		return fmt.Errorf("%w: %s at byte %d", errBadHistory, what, len(buf))
	}
	varint := func() (int64, bool) {
		v, n := binary.Varint(buf)
		if n <= 0 {
			return 0, false
		}
		buf = buf[n:]
		return v, true
	}
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(buf)
		if n <= 0 {
			return 0, false
		}
		buf = buf[n:]
		return v, true
	}
	str := func(dst *string) bool {
		l, ok := uvarint()
		if !ok || l > uint64(len(buf)) {
			return false
		}
		*dst, buf = string(buf[:l]), buf[l:]
		return true
	}
	for len(buf) > 0 {
		var c entitlements.Change
		h := &c.Holding
		var kind string
		t, ok := varint()
		if !ok || !str(&h.EventID) {
			return bad("time or event id")
		}
		op, ok := uvarint()
		if !ok || op > 255 {
			return bad("op")
		}
		c.Op = entitlements.Op(op)
		if !str(&h.System) || !str(&h.Scope) || !str(&kind) || !str(&h.Name) || !str(&h.User) || !str(&h.GrantedBy) {
			return bad("holding")
		}
		h.Kind = entitlements.Kind(kind)
		if h.LogIndex, ok = varint(); !ok {
			return bad("log index")
		}
		fn(t, c)
	}
	return nil
}
