package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for Config.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 16 << 20
	// MaxEntryBytes bounds one entry, so a damaged length field can never
	// make recovery allocate without limit.
	MaxEntryBytes = 64 << 20
)

const (
	fileMagic   = "PTSPOOL1"
	headerSize  = 24
	typeEntry   = 1
	typeAck     = 2
	segPrefix   = "seg-"
	segSuffix   = ".wal"
	tmpSuffix   = ".tmp"
	brokenInfix = ".broken-"
	// rotateAckedBytes: once every entry in the active segment is
	// acknowledged and it holds at least this much, start a new one so the
	// old one can be removed.
	rotateAckedBytes = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors a caller decides on.
var (
	// ErrFull is returned by Append when the entry does not fit under
	// Config.MaxBytes until more entries are acknowledged.
	ErrFull = errors.New("spool full")
	// ErrTooLarge is returned for an entry that could never fit.
	ErrTooLarge = errors.New("entry larger than the spool allows")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("spool closed")
)

// Config configures a spool.
type Config struct {
	// Dir holds the segment files; it is created if missing.
	Dir string
	// MaxBytes bounds the total size of the segment files (DefaultMaxBytes
	// when zero).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started
	// (DefaultSegmentBytes when zero; at most MaxBytes/4).
	SegmentBytes int64
	// NoSync skips fsync. Only for measuring the rest of the pipeline:
	// without fsync the durability guarantees do not hold.
	NoSync bool
	Logger *slog.Logger
}

// Entry is one stored entry.
type Entry struct {
	Index uint64
	Data  []byte
}

// Stats describes the spool's state.
type Stats struct {
	// Bytes is the total size of the segment files, Max the bound.
	Bytes, Max int64
	// Segments is the number of segment files.
	Segments int
	// Pending is the number of entries not yet acknowledged; PendingBytes
	// their payload size.
	Pending      int
	PendingBytes int64
	// Acked is the highest acknowledged index, Last the highest appended.
	Acked, Last uint64
	// Full is set from an Append that did not fit until space is freed.
	Full      bool
	FullSince time.Time
	// FullEvents counts how often the spool became full.
	FullEvents int64
	// Recovery figures from Open.
	TornTails      int
	DamagedRegions int
	LostIndexes    int
}

type loc struct {
	index uint64
	off   int64
	n     int64
}

type segment struct {
	name    string // base name
	base    uint64
	f       *os.File
	size    int64
	entries []loc
}

func (g *segment) lastIndex() uint64 {
	if len(g.entries) == 0 {
		return 0
	}
	return g.entries[len(g.entries)-1].index
}

// Spool is an open spool. It is safe for concurrent use; appends are
// serialised.
type Spool struct {
	cfg Config
	log *slog.Logger

	// mu guards everything below.
	mu      sync.Mutex
	closed  bool
	segs    []*segment // in index order; the last one is active
	bytes   int64
	next    uint64 // index of the next entry
	acked   uint64
	pending int64 // payload bytes of unacked entries
	full    bool
	since   time.Time
	stats   Stats
	changed chan struct{} // closed and replaced on every change
}

// Open opens or creates the spool in cfg.Dir and recovers it (see the
// package documentation).
func Open(cfg Config) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: Dir is required")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = DefaultSegmentBytes
	}
	if cfg.SegmentBytes > cfg.MaxBytes/4 {
		cfg.SegmentBytes = cfg.MaxBytes / 4
	}
	if cfg.SegmentBytes < 4096 {
		cfg.SegmentBytes = 4096
	}
	s := &Spool{cfg: cfg, log: cfg.Logger, changed: make(chan struct{}), next: 1}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", cfg.Dir, err)
	}
	if err := s.recover(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

func segName(base uint64) string { return fmt.Sprintf("%s%016x%s", segPrefix, base, segSuffix) }

func parseSegName(name string) (uint64, bool) {
	if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	hex := strings.TrimSuffix(strings.TrimPrefix(name, segPrefix), segSuffix)
	if len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil
}

func (s *Spool) path(name string) string { return filepath.Join(s.cfg.Dir, name) }

func (s *Spool) recover() error {
	des, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", s.cfg.Dir, err)
	}
	var bases []uint64
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, segSuffix+tmpSuffix) {
			// A segment whose creation did not finish holds only a header.
			if err := os.Remove(s.path(name)); err != nil {
				return fmt.Errorf("spool: remove unfinished %s: %w", name, err)
			}
			continue
		}
		if b, ok := parseSegName(name); ok && de.Type().IsRegular() {
			bases = append(bases, b)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	var lastEntry, maxAck uint64
	for i, b := range bases {
		g, ack, err := s.loadSegment(b, i == len(bases)-1, lastEntry)
		if err != nil {
			return err
		}
		if g == nil {
			continue
		}
		if li := g.lastIndex(); li > lastEntry {
			lastEntry = li
		}
		maxAck = max(maxAck, ack)
		s.segs = append(s.segs, g)
		s.bytes += g.size
	}
	if len(s.segs) == 0 {
		if err := s.newSegment(1); err != nil {
			return err
		}
		s.acked = 0
		s.next = 1
		return nil
	}
	s.next = max(lastEntry+1, s.segs[len(s.segs)-1].base)
	s.acked = max(maxAck, s.segs[0].base-1)
	if s.acked >= s.next {
		s.acked = s.next - 1
	}
	// Count what is pending and what went missing.
	expect := s.acked + 1
	for _, g := range s.segs {
		for _, e := range g.entries {
			if e.index <= s.acked {
				continue
			}
			if e.index > expect {
				s.stats.LostIndexes += int(e.index - expect)
				s.log.Error("spool: entries lost to damage; central will report the gap",
					"first_missing", expect, "last_missing", e.index-1)
			}
			expect = e.index + 1
			s.pending += e.n
			s.stats.Pending++
		}
	}
	s.log.Info("spool opened", "dir", s.cfg.Dir, "segments", len(s.segs), "bytes", s.bytes,
		"pending", s.stats.Pending, "acked", s.acked, "next", s.next)
	// Drop segments that hold only acknowledged entries.
	return s.removeAckedLocked()
}

// loadSegment reads and checks one segment file. lastEntry is the highest
// entry index seen in earlier segments. It returns the segment (nil if
// the file was set aside) and the highest ack index in it.
func (s *Spool) loadSegment(base uint64, isLast bool, lastEntry uint64) (*segment, uint64, error) {
	name := segName(base)
	p := s.path(name)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: open %s: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("spool: stat %s: %w", p, err)
	}
	size := fi.Size()
	var magic [8]byte
	if _, err := f.ReadAt(magic[:], 0); err != nil || string(magic[:]) != fileMagic {
		if isLast && size <= int64(len(fileMagic)) && allZeroOrPrefix(magic[:size]) {
			// Crash while creating the segment: no entry was ever in it.
			if err := s.rewriteHeader(f, p, size); err != nil {
				f.Close()
				return nil, 0, err
			}
			return &segment{name: name, base: base, f: f, size: int64(len(fileMagic))}, 0, nil
		}
		f.Close()
		aside := p + brokenInfix + time.Now().UTC().Format("20060102T150405.000000000Z")
		if err := os.Rename(p, aside); err != nil {
			return nil, 0, fmt.Errorf("spool: set aside %s with bad header: %w", p, err)
		}
		s.stats.DamagedRegions++
		s.log.Error("spool: segment has no valid header; set aside, not read", "segment", p, "moved_to", aside)
		return nil, 0, s.syncDir()
	}

	g := &segment{name: name, base: base, f: f, size: size}
	var maxAck uint64
	off := int64(len(fileMagic))
	var buf []byte
	type region struct{ from, to int64 }
	var bad []region
	inBad := false
	var badFrom int64
	for off+headerSize <= size {
		typ, idx, n, ok := s.readFrame(f, off, size, &buf)
		if ok && typ == typeEntry && idx <= lastEntry {
			ok = false // indexes must increase
		}
		if !ok {
			if !inBad {
				inBad, badFrom = true, off
			}
			off += 8
			continue
		}
		if inBad {
			bad = append(bad, region{badFrom, off})
			inBad = false
		}
		switch typ {
		case typeEntry:
			g.entries = append(g.entries, loc{index: idx, off: off, n: n})
			lastEntry = idx
		case typeAck:
			maxAck = max(maxAck, idx)
		}
		off += frameSize(n)
	}
	if off < size && !inBad {
		inBad, badFrom = true, off
	}
	if off > size {
		// The last frame is whole but its zero padding did not reach the
		// disk: restore it, so that the next frame starts on an 8-byte
		// boundary where recovery looks for it.
		if err := f.Truncate(off); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("spool: pad %s to %d: %w", p, off, err)
		}
		if err := s.fsync(f); err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("spool: fsync %s: %w", p, err)
		}
		s.log.Warn("spool: restored the padding of the last frame", "segment", p, "size", off)
		g.size, size = off, off
	}
	tornAt := int64(-1)
	if inBad {
		if isLast {
			tornAt = badFrom
		} else {
			bad = append(bad, region{badFrom, size})
		}
	}
	if len(bad) > 0 || tornAt >= 0 {
		aside, err := s.copyAside(f, p, size)
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		for _, r := range bad {
			s.stats.DamagedRegions++
			s.log.Error("spool: damaged frames skipped; the valid frames around them are kept",
				"segment", p, "from", r.from, "to", r.to, "copy", aside)
		}
		if tornAt >= 0 {
			if err := f.Truncate(tornAt); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("spool: truncate torn tail of %s at %d: %w", p, tornAt, err)
			}
			if err := s.fsync(f); err != nil {
				f.Close()
				return nil, 0, fmt.Errorf("spool: fsync %s: %w", p, err)
			}
			s.stats.TornTails++
			s.log.Warn("spool: torn tail cut off (a crash interrupted an append); everything before it is kept",
				"segment", p, "truncated_at", tornAt, "bytes_removed", size-tornAt, "copy", aside)
			g.size = tornAt
		}
	}
	return g, maxAck, nil
}

func allZeroOrPrefix(b []byte) bool {
	for i, c := range b {
		if c != 0 && c != fileMagic[i] {
			return false
		}
	}
	return true
}

func (s *Spool) rewriteHeader(f *os.File, p string, size int64) error {
	if _, err := f.WriteAt([]byte(fileMagic), 0); err != nil {
		return fmt.Errorf("spool: rewrite header of %s: %w", p, err)
	}
	if err := s.fsync(f); err != nil {
		return fmt.Errorf("spool: fsync %s: %w", p, err)
	}
	s.log.Warn("spool: finished a segment whose creation was interrupted", "segment", p, "had_bytes", size)
	return nil
}

func (s *Spool) copyAside(f *os.File, p string, size int64) (string, error) {
	aside := p + brokenInfix + time.Now().UTC().Format("20060102T150405.000000000Z")
	out, err := os.OpenFile(aside, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("spool: copy %s aside: %w", p, err)
	}
	_, err = io.Copy(out, io.NewSectionReader(f, 0, size))
	if err == nil {
		err = s.fsync(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("spool: copy %s aside to %s: %w", p, aside, err)
	}
	return aside, s.syncDir()
}

// readFrame reads and checks the frame at off.
func (s *Spool) readFrame(f *os.File, off, size int64, buf *[]byte) (typ byte, idx uint64, n int64, ok bool) {
	var h [headerSize]byte
	if _, err := f.ReadAt(h[:], off); err != nil {
		return 0, 0, 0, false
	}
	n = int64(binary.LittleEndian.Uint32(h[0:4]))
	sum := binary.LittleEndian.Uint32(h[4:8])
	typ = h[8]
	for _, c := range h[9:16] {
		if c != 0 {
			return 0, 0, 0, false
		}
	}
	idx = binary.LittleEndian.Uint64(h[16:24])
	switch {
	case typ == typeEntry && n > 0 && n <= MaxEntryBytes && idx > 0:
	case typ == typeAck && n == 0:
	default:
		return 0, 0, 0, false
	}
	if off+headerSize+n > size {
		return 0, 0, 0, false
	}
	if int64(cap(*buf)) < n {
		*buf = make([]byte, n)
	}
	p := (*buf)[:n]
	if _, err := f.ReadAt(p, off+headerSize); err != nil {
		return 0, 0, 0, false
	}
	c := crc32.Update(crc32.Checksum(h[8:], castagnoli), castagnoli, p)
	if c != sum {
		return 0, 0, 0, false
	}
	return typ, idx, n, true
}

func frameSize(n int64) int64 { return (headerSize + n + 7) &^ 7 }

func encodeFrame(typ byte, idx uint64, payload []byte) []byte {
	b := make([]byte, frameSize(int64(len(payload))))
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(payload)))
	b[8] = typ
	binary.LittleEndian.PutUint64(b[16:24], idx)
	copy(b[headerSize:], payload)
	c := crc32.Update(crc32.Checksum(b[8:headerSize], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(b[4:8], c)
	return b
}

func (s *Spool) fsync(f *os.File) error {
	if s.cfg.NoSync {
		return nil
	}
	return f.Sync()
}

func (s *Spool) syncDir() error {
	if s.cfg.NoSync {
		return nil
	}
	d, err := os.Open(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("spool: open dir %s: %w", s.cfg.Dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: fsync dir %s: %w", s.cfg.Dir, err)
	}
	return nil
}

// newSegment creates segment base (via a temporary file, rename, and
// directory fsync) and makes it the active one.
func (s *Spool) newSegment(base uint64) error {
	name := segName(base)
	p := s.path(name)
	tmp := p + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create %s: %w", tmp, err)
	}
	if _, err := f.Write([]byte(fileMagic)); err != nil {
		f.Close()
		return fmt.Errorf("spool: write %s: %w", tmp, err)
	}
	if err := s.fsync(f); err != nil {
		f.Close()
		return fmt.Errorf("spool: fsync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		f.Close()
		return fmt.Errorf("spool: rename %s: %w", tmp, err)
	}
	if err := s.syncDir(); err != nil {
		f.Close()
		return err
	}
	s.segs = append(s.segs, &segment{name: name, base: base, f: f, size: int64(len(fileMagic))})
	s.bytes += int64(len(fileMagic))
	return nil
}

func (s *Spool) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Append stores data as the next entry and returns its index once it is
// durable. It returns ErrFull (without waiting) when the entry does not fit
// under MaxBytes; see WaitForSpace. The spool keeps no reference to data.
func (s *Spool) Append(data []byte) (uint64, error) { return s.append(data, true) }

// AppendBeyond is Append without the MaxBytes bound. It is for re-writing
// entries the spool already holds, each acknowledged right after its copy
// is durable: waiting for space there could wait for itself. The spool
// then exceeds MaxBytes by at most the copies of one segment's entries.
func (s *Spool) AppendBeyond(data []byte) (uint64, error) { return s.append(data, false) }

func (s *Spool) append(data []byte, bounded bool) (uint64, error) {
	if len(data) == 0 {
		return 0, errors.New("spool: empty entry")
	}
	fs := frameSize(int64(len(data)))
	if len(data) > MaxEntryBytes || fs+int64(len(fileMagic)) > s.cfg.MaxBytes {
		return 0, fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(data), min(int64(MaxEntryBytes), s.cfg.MaxBytes))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrClosed
	}
	if bounded && s.bytes+fs > s.cfg.MaxBytes {
		if !s.full {
			s.full, s.since = true, time.Now()
			s.stats.FullEvents++
			s.log.Error("spool full: collection is paused until central acknowledges batches; nothing is dropped",
				"bytes", s.bytes, "max_bytes", s.cfg.MaxBytes, "pending", s.stats.Pending)
		}
		return 0, ErrFull
	}
	act := s.segs[len(s.segs)-1]
	if act.size >= s.cfg.SegmentBytes && len(act.entries) > 0 {
		if err := s.newSegment(s.next); err != nil {
			return 0, err
		}
		act = s.segs[len(s.segs)-1]
	}
	idx := s.next
	frame := encodeFrame(typeEntry, idx, data)
	if _, err := act.f.WriteAt(frame, act.size); err != nil {
		// Leave size as it was: the next append overwrites the partial
		// frame, and recovery would cut it off as a torn tail.
		return 0, fmt.Errorf("spool: append to %s: %w", act.name, err)
	}
	if err := s.fsync(act.f); err != nil {
		return 0, fmt.Errorf("spool: fsync %s: %w", act.name, err)
	}
	act.entries = append(act.entries, loc{index: idx, off: act.size, n: int64(len(data))})
	act.size += fs
	s.bytes += fs
	s.next++
	s.pending += int64(len(data))
	s.stats.Pending++
	if bounded && s.full {
		s.log.Info("spool has room again; collection resumes", "bytes", s.bytes, "max_bytes", s.cfg.MaxBytes,
			"was_full_for", time.Since(s.since).Round(time.Millisecond))
		s.full = false
	}
	s.notifyLocked()
	return idx, nil
}

// WaitForSpace blocks until an entry of n bytes fits, ctx is done, or the
// spool is closed.
func (s *Spool) WaitForSpace(ctx context.Context, n int) error {
	fs := frameSize(int64(n))
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if s.bytes+fs <= s.cfg.MaxBytes || fs+int64(len(fileMagic)) > s.cfg.MaxBytes {
			s.mu.Unlock()
			return nil
		}
		if !s.full {
			s.full, s.since = true, time.Now()
			s.stats.FullEvents++
			s.log.Error("spool full: collection is paused until central acknowledges batches; nothing is dropped",
				"bytes", s.bytes, "max_bytes", s.cfg.MaxBytes, "pending", s.stats.Pending)
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Next returns the first entry with an index above after, waiting for one
// to be appended if there is none yet. Entries at or below the
// acknowledged index are never returned. The returned Data is the
// caller's.
func (s *Spool) Next(ctx context.Context, after uint64) (Entry, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Entry{}, ErrClosed
		}
		after = max(after, s.acked)
		if l, g := s.findLocked(after + 1); l != nil {
			data := make([]byte, l.n)
			_, err := g.f.ReadAt(data, l.off+headerSize)
			s.mu.Unlock()
			if err != nil {
				return Entry{}, fmt.Errorf("spool: read entry %d from %s: %w", l.index, g.name, err)
			}
			return Entry{Index: l.index, Data: data}, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Entry{}, ctx.Err()
		case <-ch:
		}
	}
}

// findLocked returns the first stored entry with index >= idx.
func (s *Spool) findLocked(idx uint64) (*loc, *segment) {
	for _, g := range s.segs {
		if len(g.entries) == 0 || g.lastIndex() < idx {
			continue
		}
		i := sort.Search(len(g.entries), func(i int) bool { return g.entries[i].index >= idx })
		return &g.entries[i], g
	}
	return nil, nil
}

// Scan calls fn for every entry still stored (acknowledged or not), in
// index order, with acked set for those at or below the acknowledged
// index. It is for recovery at start-up; fn must not call the Spool.
func (s *Spool) Scan(fn func(e Entry, acked bool) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.segs {
		for _, l := range g.entries {
			data := make([]byte, l.n)
			if _, err := g.f.ReadAt(data, l.off+headerSize); err != nil {
				return fmt.Errorf("spool: read entry %d from %s: %w", l.index, g.name, err)
			}
			if err := fn(Entry{Index: l.index, Data: data}, l.index <= s.acked); err != nil {
				return err
			}
		}
	}
	return nil
}

// Newest returns the entry with the highest index still stored
// (acknowledged or not); ok is false when the spool holds none.
func (s *Spool) Newest() (e Entry, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.segs) - 1; i >= 0; i-- {
		g := s.segs[i]
		if len(g.entries) == 0 {
			continue
		}
		l := g.entries[len(g.entries)-1]
		data := make([]byte, l.n)
		if _, err := g.f.ReadAt(data, l.off+headerSize); err != nil {
			return Entry{}, false, fmt.Errorf("spool: read entry %d from %s: %w", l.index, g.name, err)
		}
		return Entry{Index: l.index, Data: data}, true, nil
	}
	return Entry{}, false, nil
}

// Ack records that every entry up to and including idx was acknowledged
// by central, and removes segments that hold nothing else. The ack record
// is not fsynced on its own (see the package documentation).
func (s *Spool) Ack(idx uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if idx <= s.acked {
		return nil
	}
	if idx >= s.next {
		return fmt.Errorf("spool: ack %d beyond the last entry %d", idx, s.next-1)
	}
	for _, g := range s.segs {
		for _, l := range g.entries {
			if l.index > s.acked && l.index <= idx {
				s.pending -= l.n
				s.stats.Pending--
			}
		}
	}
	s.acked = idx
	act := s.segs[len(s.segs)-1]
	allAcked := s.acked == s.next-1
	if allAcked && (act.size >= s.cfg.SegmentBytes/2 || act.size >= rotateAckedBytes && s.full) && act.size > int64(len(fileMagic)) {
		if err := s.newSegment(s.next); err != nil {
			return err
		}
	} else {
		frame := encodeFrame(typeAck, idx, nil)
		if _, err := act.f.WriteAt(frame, act.size); err != nil {
			return fmt.Errorf("spool: write ack to %s: %w", act.name, err)
		}
		act.size += int64(len(frame))
		s.bytes += int64(len(frame))
	}
	if err := s.removeAckedLocked(); err != nil {
		return err
	}
	s.notifyLocked()
	return nil
}

// removeAckedLocked removes every segment but the active one whose entries
// are all acknowledged.
func (s *Spool) removeAckedLocked() error {
	keep := s.segs[:0]
	removed := false
	for i, g := range s.segs {
		if i < len(s.segs)-1 && g.lastIndex() <= s.acked {
			g.f.Close()
			if err := os.Remove(s.path(g.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: remove acknowledged segment %s: %w", g.name, err)
			}
			s.bytes -= g.size
			removed = true
			continue
		}
		keep = append(keep, g)
	}
	for i := len(keep); i < len(s.segs); i++ {
		s.segs[i] = nil
	}
	s.segs = keep
	if removed {
		// Not strictly needed: a segment that comes back after a crash only
		// holds entries that are resent as duplicates.
		return s.syncDir()
	}
	return nil
}

// Stats returns the spool's current state.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Bytes, st.Max, st.Segments = s.bytes, s.cfg.MaxBytes, len(s.segs)
	st.PendingBytes = s.pending
	st.Acked, st.Last = s.acked, s.next-1
	st.Full, st.FullSince = s.full, s.since
	return st
}

// Close closes the segment files. Entries stay on disk for the next Open.
// Close is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if len(s.segs) > 0 {
		// Make any unsynced ack frame durable.
		err = s.fsync(s.segs[len(s.segs)-1].f)
	}
	s.closeFiles()
	s.notifyLocked()
	return err
}

func (s *Spool) closeFiles() {
	for _, g := range s.segs {
		g.f.Close()
	}
}
