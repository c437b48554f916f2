package window

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// StoreFile is the name of the Engine's log in a collector's state
// directory.
const StoreFile = "window.log"

// maxStoreLine bounds one line of the log; longer lines are corrupt.
const maxStoreLine = 256 << 10

// compactEvery is how many appended lines trigger a rewrite of the log
// without the entries that fell out of the horizon.
const compactEvery = 20000

// Entry is one emitted event id, the time it is kept by (its event time,
// never before the window it was read in) and its record's sequence number.
type Entry struct {
	ID   string
	Time time.Time
	Seq  uint64
}

// storeLine is one line of the log: an entry, a progress mark or a note.
type storeLine struct {
	ID   string `json:"id,omitempty"`
	T    int64  `json:"t,omitempty"`
	S    uint64 `json:"s"`
	Mark *State `json:"mark,omitempty"`
	Note string `json:"note,omitempty"`
	Key  string `json:"key,omitempty"`
	Pin  bool   `json:"pin,omitempty"`
}

// Note is a collector's own durable bookkeeping in the log (the SQS mode
// of cloudtrail notes the trail files it has taken from the queue). A note
// is rolled back like an entry when its Seq is above the committed one,
// unless it is pinned: a pinned note says nothing about what was emitted
// (a file to read), so it survives every rollback until it ages out.
type Note struct {
	Kind, Key string
	Time      time.Time
	Seq       uint64
	Pin       bool
}

type storeEntry struct {
	t int64
	s uint64
}

// Store is the de-duplication set and progress log of one collector
// instance, kept in its state directory: an append-only file of JSON lines,
// fsynced before the records they describe are emitted, rewritten (temp
// file, fsync, rename, directory fsync) when it has grown.
type Store struct {
	dir, path   string
	f           *os.File
	seen        map[string]storeEntry
	last        *State // newest progress mark
	notes       []Note
	appended    int
	pruneBefore int64
}

// OpenStore opens the log in dir and rolls it back to the committed
// sequence number: entries and marks above it describe records that were
// never committed, and are dropped. It returns the newest mark written at
// exactly committed (nil if none): resuming from it is safe and skips the
// windows drained since the committed record. Unreadable lines (a torn last
// line after a crash) are reported to problems and skipped.
func OpenStore(dir string, committed uint64, problems collectors.ProblemReporter) (*Store, *State, error) {
	s := &Store{dir: dir, path: filepath.Join(dir, StoreFile), seen: map[string]storeEntry{}}
	var resume *State
	f, err := os.Open(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, nil, fmt.Errorf("open window state: %w", err)
	default:
		resume, err = s.load(f, committed, problems)
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	s.last = resume
	if err := s.compact(); err != nil {
		return nil, nil, err
	}
	return s, resume, nil
}

func (s *Store) load(r io.Reader, committed uint64, problems collectors.ProblemReporter) (*State, error) {
	var resume *State
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return resume, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, errLongLine) {
				report(problems, fmt.Sprintf("%s:%d", s.path, n), "line longer than the limit", "")
				continue
			}
			return nil, fmt.Errorf("read %s: %w", s.path, err)
		}
		var l storeLine
		if jerr := json.Unmarshal(line, &l); jerr != nil || (l.ID == "" && l.Mark == nil && l.Note == "") {
			reason := "not a window state line"
			if jerr != nil {
				reason = jerr.Error()
			}
			report(problems, fmt.Sprintf("%s:%d", s.path, n), reason, sample(line))
			continue
		}
		if l.Note != "" {
			if l.Pin || l.S <= committed {
				s.notes = append(s.notes, Note{Kind: l.Note, Key: l.Key, Time: time.Unix(0, l.T), Seq: l.S, Pin: l.Pin})
			}
			continue
		}
		if l.S > committed {
			continue
		}
		if l.Mark != nil {
			if l.S == committed {
				m := *l.Mark
				resume = &m
			}
			continue
		}
		s.seen[l.ID] = storeEntry{t: l.T, s: l.S}
	}
}

var errLongLine = errors.New("line too long")

// readLine reads one '\n'-terminated line, discarding lines longer than
// maxStoreLine (returning errLongLine for them).
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	long := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !long {
			buf = append(buf, chunk...)
			if len(buf) > maxStoreLine {
				long, buf = true, nil
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if long {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLongLine
		}
		if len(buf) > 0 && buf[len(buf)-1] == '\n' {
			buf = buf[:len(buf)-1]
		}
		return buf, err
	}
}

// Seen reports whether id was emitted (and is within the horizon).
func (s *Store) Seen(id string) bool {
	_, ok := s.seen[id]
	return ok
}

// Len returns how many ids are kept.
func (s *Store) Len() int { return len(s.seen) }

// Add records entries durably. Call it before emitting their records.
func (s *Store) Add(entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	var buf []byte
	for _, e := range entries {
		l := storeLine{ID: e.ID, T: e.Time.UnixNano(), S: e.Seq}
		b, _ := json.Marshal(l)
		buf = append(append(buf, b...), '\n')
	}
	if err := s.append(buf); err != nil {
		return err
	}
	for _, e := range entries {
		s.seen[e.ID] = storeEntry{t: e.Time.UnixNano(), s: e.Seq}
	}
	s.appended += len(entries)
	return nil
}

// Mark records a progress mark, durably when sync is set, and rewrites the
// log when it has grown. A mark lost in a crash only makes the next start
// resume from an older one and re-read (and de-duplicate) a little more.
func (s *Store) Mark(st State, sync bool) error {
	st.V, st.Win, st.Page = 1, nil, ""
	b, err := json.Marshal(storeLine{S: st.Seq, Mark: &st})
	if err != nil {
		return fmt.Errorf("encode window mark: %w", err)
	}
	if sync {
		if err := s.append(append(b, '\n')); err != nil {
			return err
		}
	} else if _, err := s.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("append %s: %w", s.path, err)
	}
	s.last = &st
	s.appended++
	if s.appended >= compactEvery {
		return s.compact()
	}
	return nil
}

// AddNote records n durably.
func (s *Store) AddNote(n Note) error {
	b, err := json.Marshal(storeLine{Note: n.Kind, Key: n.Key, T: n.Time.UnixNano(), S: n.Seq, Pin: n.Pin})
	if err != nil {
		return fmt.Errorf("encode window note: %w", err)
	}
	if err := s.append(append(b, '\n')); err != nil {
		return err
	}
	s.notes = append(s.notes, n)
	s.appended++
	if s.appended >= compactEvery {
		return s.compact()
	}
	return nil
}

// Notes returns the notes kept, oldest first.
func (s *Store) Notes() []Note { return append([]Note(nil), s.notes...) }

// PruneBefore lets the next rewrite drop entries kept by a time before t.
func (s *Store) PruneBefore(t time.Time) {
	if n := t.UnixNano(); n > s.pruneBefore {
		s.pruneBefore = n
	}
}

func (s *Store) append(b []byte) error {
	if _, err := s.f.Write(b); err != nil {
		return fmt.Errorf("append %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.path, err)
	}
	return nil
}

// compact rewrites the log with the kept entries and the newest mark.
func (s *Store) compact() error {
	for id, e := range s.seen {
		if e.t < s.pruneBefore {
			delete(s.seen, id)
		}
	}
	kept := s.notes[:0]
	for _, n := range s.notes {
		if n.Time.UnixNano() >= s.pruneBefore {
			kept = append(kept, n)
		}
	}
	s.notes = kept
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rewrite window state: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for id, e := range s.seen {
		if err := enc.Encode(storeLine{ID: id, T: e.t, S: e.s}); err != nil {
			f.Close()
			return fmt.Errorf("rewrite window state: %w", err)
		}
	}
	for _, n := range s.notes {
		if err := enc.Encode(storeLine{Note: n.Kind, Key: n.Key, T: n.Time.UnixNano(), S: n.Seq, Pin: n.Pin}); err != nil {
			f.Close()
			return fmt.Errorf("rewrite window state: %w", err)
		}
	}
	if s.last != nil {
		if err := enc.Encode(storeLine{S: s.last.Seq, Mark: s.last}); err != nil {
			f.Close()
			return fmt.Errorf("rewrite window state: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("rewrite window state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.f, err = os.OpenFile(s.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", s.path, err)
	}
	s.appended = 0
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open state dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state dir %s: %w", dir, err)
	}
	return nil
}

// Close closes the log file.
func (s *Store) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func report(p collectors.ProblemReporter, where, reason, smp string) {
	if p != nil {
		p.Report(collectors.Problem{Where: where, Reason: reason, Sample: smp})
	}
}

func sample(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(b)
}
