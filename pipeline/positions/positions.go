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
	"github.com/provtrail/provtrail/internal/atomicfile"
)

// MaxFileBytes bounds the positions file.
const MaxFileBytes = 16 << 20

// fileVersion is the format version of the positions file.
const fileVersion = 2

type fileFormat struct {
	Version   int              `json:"version"`
	Positions map[string]Entry `json:"positions"`
}

// Entry is one collector instance's committed position and the spool
// index of the entry (signed batch) that carried it.
type Entry struct {
	Pos   collectors.Position `json:"pos"`
	Index uint64              `json:"index"`
}

// Store holds positions keyed by collector instance ("TYPE/NAME"). It is
// safe for concurrent use.
type Store struct {
	path string

	mu    sync.Mutex
	pos   map[string]Entry
	dirty bool
}

// Open loads the store at path; a missing file is an empty store.
func Open(path string) (*Store, error) {
	s := &Store{path: path, pos: map[string]Entry{}}
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
	return append(collectors.Position(nil), s.pos[key].Pos...)
}

// All returns a copy of every entry.
func (s *Store) All() map[string]Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.pos)
}

// Set records positions carried by spool entry index, in memory; Commit
// makes them durable. A position is replaced only by one from the same or
// a later spool entry. Positions of instances not named in p are kept: a
// collector removed from the configuration resumes where it stopped if it
// comes back.
func (s *Store) Set(p map[string]collectors.Position, index uint64) {
	if len(p) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range p {
		if old, ok := s.pos[k]; ok && old.Index > index {
			continue
		}
		s.pos[k] = Entry{Pos: append(collectors.Position(nil), v...), Index: index}
	}
	s.dirty = true
}

// Reset replaces a position unconditionally (or removes it when e.Pos is
// nil): for recovery when the spool entry that carried it was lost.
func (s *Store) Reset(key string, e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Pos == nil {
		delete(s.pos, key)
	} else {
		s.pos[key] = e
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
