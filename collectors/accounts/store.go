package accounts

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// keySize is the size of the per-host HMAC key.
const keySize = 32

// DefaultKeep is how many snapshots the state dir retains. Older ones are
// only needed if the agent's committed position lags that far behind.
const DefaultKeep = 32

// store keeps the collector's state in its StateDir:
//
//	hmac.key             32 random bytes (0600): the key of the password digests
//	snapshots/NNN.json   numbered snapshots (0600), each written
//	                     temp -> fsync -> rename -> fsync dir
//
// Snapshots never hold a password hash, only its keyed digest; the key
// never leaves this directory.
type store struct {
	dir string
	key []byte
	// gen identifies this key (and so this store) in event ids, so that a
	// wiped state dir never reuses the ids of an earlier one.
	gen string
}

func openStore(dir string) (*store, error) {
	if dir == "" {
		return nil, errors.New("accounts: no state dir")
	}
	if err := os.MkdirAll(filepath.Join(dir, "snapshots"), 0o700); err != nil {
		return nil, fmt.Errorf("accounts: create state dir: %w", err)
	}
	keyPath := filepath.Join(dir, "hmac.key")
	key, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		key = make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("accounts: generate key: %w", err)
		}
		if err := writeAtomic(keyPath, key); err != nil {
			return nil, fmt.Errorf("accounts: write key: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("accounts: read key: %w", err)
	case len(key) != keySize:
		return nil, fmt.Errorf("accounts: %s holds %d bytes, want %d", keyPath, len(key), keySize)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("provtrail accounts generation"))
	return &store{dir: dir, key: key, gen: hex.EncodeToString(m.Sum(nil)[:8])}, nil
}

func (s *store) snapPath(seq uint64) string {
	return filepath.Join(s.dir, "snapshots", fmt.Sprintf("%020d.json", seq))
}

// seqs lists the stored snapshots, oldest first.
func (s *store) seqs() ([]uint64, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "snapshots"))
	if err != nil {
		return nil, fmt.Errorf("accounts: list snapshots: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(name, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *store) load(seq uint64) (*Snapshot, error) {
	b, err := os.ReadFile(s.snapPath(seq))
	if err != nil {
		return nil, fmt.Errorf("accounts: read snapshot %d: %w", seq, err)
	}
	var snap Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("accounts: decode snapshot %d: %w", seq, err)
	}
	if snap.Users == nil {
		snap.Users = map[string]*User{}
	}
	if snap.Groups == nil {
		snap.Groups = map[string]*Group{}
	}
	return &snap, nil
}

func (s *store) save(seq uint64, snap *Snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("accounts: encode snapshot: %w", err)
	}
	if err := writeAtomic(s.snapPath(seq), b); err != nil {
		return fmt.Errorf("accounts: write snapshot %d: %w", seq, err)
	}
	return nil
}

// prune removes all but the newest keep snapshots, never pin.
func (s *store) prune(keep int, pin uint64) error {
	seqs, err := s.seqs()
	if err != nil {
		return err
	}
	for i := 0; i < len(seqs)-keep; i++ {
		if seqs[i] == pin {
			continue
		}
		if err := os.Remove(s.snapPath(seqs[i])); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("accounts: prune: %w", err)
		}
	}
	return nil
}

// sameContent reports whether a and b hold the same accounts, ignoring
// file times.
func sameContent(a, b *Snapshot) bool {
	ca, cb := *a, *b
	ca.MTimes, cb.MTimes = nil, nil
	ja, err1 := json.Marshal(&ca)
	jb, err2 := json.Marshal(&cb)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// writeAtomic writes data to path so that a crash leaves either the old or
// the new content: temp file, fsync, rename, fsync of the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
