// Package positions keeps each collector instance's committed resume
// position in one small file, replaced atomically (write, fsync, rename,
// fsync dir), so that a crash leaves either the previous set or the new
// one.
//
// The caller decides when a position is committed: the agent's pipeline
// commits a position only after the batch holding the record it follows is
// durably in the spool, so a restart never skips a record that was not
// spooled.
package positions

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"sync"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/pipeline/internal/atomicfile"
)

// MaxFileBytes bounds the positions file.
const MaxFileBytes = 16 << 20

// fileVersion is the format version of the positions file.
const fileVersion = 1

type fileFormat struct {
	Version   int                            `json:"version"`
	Positions map[string]collectors.Position `json:"positions"`
}

// Store holds positions keyed by collector instance ("TYPE/NAME"). It is
// safe for concurrent use.
type Store struct {
	path string

	mu    sync.Mutex
	pos   map[string]collectors.Position
	dirty bool
}

// Open loads the store at path; a missing file is an empty store.
func Open(path string) (*Store, error) {
	s := &Store{path: path, pos: map[string]collectors.Position{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("positions: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("positions: read %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("positions: %s is larger than %d bytes", path, MaxFileBytes)
	}
	var ff fileFormat
	if err := json.Unmarshal(b, &ff); err != nil {
		return nil, fmt.Errorf("positions: decode %s: %w", path, err)
	}
	if ff.Version != fileVersion {
		return nil, fmt.Errorf("positions: %s has version %d, want %d", path, ff.Version, fileVersion)
	}
	if ff.Positions != nil {
		s.pos = ff.Positions
	}
	return s, nil
}

// Get returns the committed position of a collector instance (nil when
// there is none).
func (s *Store) Get(key string) collectors.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(collectors.Position(nil), s.pos[key]...)
}

// All returns a copy of every position.
func (s *Store) All() map[string]collectors.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.pos)
}

// Set records positions in memory; Commit makes them durable. Positions of
// instances not named in p are kept: a collector removed from the
// configuration resumes where it stopped if it comes back.
func (s *Store) Set(p map[string]collectors.Position) {
	if len(p) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range p {
		s.pos[k] = append(collectors.Position(nil), v...)
	}
	s.dirty = true
}

// Commit writes the positions to disk if anything changed since the last
// commit.
func (s *Store) Commit() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(fileFormat{Version: fileVersion, Positions: s.pos})
	s.dirty = false
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("positions: encode: %w", err)
	}
	if err := atomicfile.Write(s.path, b); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("positions: %w", err)
	}
	return nil
}
