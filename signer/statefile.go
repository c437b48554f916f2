package signer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The chain state file holds two fixed-size slots, overwritten in place:
//
//	slot (4096 bytes) = "PTCS" | uint64 BE generation | uint32 BE n | n bytes JSON |
//	                    SHA-256 of the preceding bytes | zero padding
//
// The valid slot with the highest generation is the state. A write puts generation g+1
// into the slot not holding g and syncs it; then it overwrites the other slot (holding
// the key that just signed) with zeros and syncs again. A crash tears at most the slot
// being written, which then fails its checksum, and the other slot still holds a whole
// state. Overwriting in place (rather than write-new-and-rename) destroys the used key's
// bytes in the file's own blocks and costs two data syncs and no metadata update.
const (
	slotSize    = 4096
	slotMagic   = "PTCS"
	slotHeader  = 4 + 8 + 4
	slotMaxJSON = slotSize - slotHeader - sha256.Size
)

// errNoValidSlot means the file exists but holds no whole state.
var errNoValidSlot = errors.New("no valid state slot")

type stateFile struct {
	path string
	f    *os.File
	gen  uint64 // generation of the current slot (0: none)
}

// openStateFile opens (creating with mode 0600 if missing) the slot file at path and
// returns the payload of the newest valid slot; payload is nil for a new file, and err is
// errNoValidSlot when the file exists but no slot is valid.
func openStateFile(path string) (sf *stateFile, payload []byte, created bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, false, fmt.Errorf("state file: %w", err)
		}
		if err := f.Truncate(2 * slotSize); err != nil {
			f.Close()
			return nil, nil, false, fmt.Errorf("state file: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, false, fmt.Errorf("state file: fsync: %w", err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, nil, false, err
		}
		return &stateFile{path: path, f: f}, nil, true, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("state file: %w", err)
	}
	sf = &stateFile{path: path, f: f}
	if fi, err := f.Stat(); err != nil {
		f.Close()
		return nil, nil, false, fmt.Errorf("state file: %w", err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, nil, false, fmt.Errorf("state file: %w", err)
		}
	}
	buf := make([]byte, 2*slotSize)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, false, fmt.Errorf("state file: %w", err)
	}
	defer clear(buf)
	var best []byte
	for i := range 2 {
		if (i+1)*slotSize > n {
			break
		}
		gen, p, ok := parseSlot(buf[i*slotSize : (i+1)*slotSize])
		if ok && gen > sf.gen {
			sf.gen, best = gen, p
		}
	}
	if best == nil {
		return sf, nil, false, errNoValidSlot
	}
	return sf, bytes.Clone(best), false, nil
}

func parseSlot(s []byte) (gen uint64, payload []byte, ok bool) {
	if string(s[:4]) != slotMagic {
		return 0, nil, false
	}
	gen = binary.BigEndian.Uint64(s[4:12])
	n := int(binary.BigEndian.Uint32(s[12:16]))
	if gen == 0 || n > slotMaxJSON {
		return 0, nil, false
	}
	end := slotHeader + n
	sum := sha256.Sum256(s[:end])
	if !bytes.Equal(sum[:], s[end:end+sha256.Size]) {
		return 0, nil, false
	}
	return gen, s[slotHeader:end], true
}

// write stores payload as the next generation and then wipes the previous slot.
func (sf *stateFile) write(payload []byte) error {
	if len(payload) > slotMaxJSON {
		return fmt.Errorf("state file: state is %d bytes, slot holds %d", len(payload), slotMaxJSON)
	}
	gen := sf.gen + 1
	slot := make([]byte, slotSize)
	defer clear(slot)
	copy(slot, slotMagic)
	binary.BigEndian.PutUint64(slot[4:], gen)
	binary.BigEndian.PutUint32(slot[12:], uint32(len(payload)))
	copy(slot[slotHeader:], payload)
	sum := sha256.Sum256(slot[:slotHeader+len(payload)])
	copy(slot[slotHeader+len(payload):], sum[:])
	idx := int64(gen % 2)
	if _, err := sf.f.WriteAt(slot, idx*slotSize); err != nil {
		return fmt.Errorf("state file %s: %w", sf.path, err)
	}
	if err := datasync(sf.f); err != nil {
		return fmt.Errorf("state file %s: sync: %w", sf.path, err)
	}
	sf.gen = gen
	if _, err := sf.f.WriteAt(make([]byte, slotSize), (1-idx)*slotSize); err != nil {
		return fmt.Errorf("state file %s: wipe old slot: %w", sf.path, err)
	}
	if err := datasync(sf.f); err != nil {
		return fmt.Errorf("state file %s: sync: %w", sf.path, err)
	}
	return nil
}

func (sf *stateFile) close() error { return sf.f.Close() }
