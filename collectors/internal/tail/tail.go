package tail

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/provtrail/provtrail/collectors"
)

// fingerprintMax is how much of a file's head its fingerprint covers.
const fingerprintMax = 1024

// Tailer follows files by name. It is safe to Run several times, also at
// once: each Run has its own state.
type Tailer struct {
	cfg Config
}

// New returns a Tailer with cfg (see Config for the zero values).
func New(cfg Config) (*Tailer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Tailer{cfg: cfg.withDefaults()}, nil
}

// Hooks are what a consumer does with one followed file. The Tailer calls
// them from the goroutine of Run, one at a time. Only Line is required.
type Hooks struct {
	// Open is called when reading starts in a file: the file at the path,
	// or path.1 when a saved position is there, or the same file again from
	// 0 after a copytruncate (a consumer resets its per-file state).
	Open func(o Opening)
	// Line gets each complete line, without its newline, and the offset
	// of its first byte in the file being read. The slice is valid until
	// Line returns. An error ends Run with that error.
	Line func(b []byte, off int64) error
	// TooLong is called instead of Line for a line longer than
	// Config.MaxLineBytes, with at most its first 120 bytes. Nil: the
	// Tailer reports a Problem.
	TooLong func(off int64, prefix []byte)
	// Held reports whether the consumer holds lines back (events waiting
	// for more lines). Nil: never.
	Held func() bool
	// Flush asks the consumer to deliver what it holds; resume is the
	// offset where reading continues with nothing held. It is called when
	// Held has been true for Config.IdleAfter without new data, before a
	// drained rotated file is left, and before reading starts over after a
	// copytruncate (truncated: resume points into the old content; the
	// positions of what is flushed now belong at offset 0).
	Flush func(resume int64, truncated bool) error
	// Context maps a resume offset to the offset re-reading starts from
	// on resume (FilePos.ContextOffset). Nil: the offset itself.
	Context func(off int64) int64
	// Checkpoint gets the file's position whenever nothing is held:
	// every line before it was handled. Nil: ignored.
	Checkpoint func(p FilePos)
}

// Opening says where reading starts in a file.
type Opening struct {
	// Name is the file's name: the followed path, or path.1.
	Name string
	// From is the offset of the first line handed to Line.
	From int64
	// Done is the saved Offset: lines that start before it were handled
	// before a restart and are only context now.
	Done int64
	// Resumed is set when the file is the one a saved position names.
	Resumed bool
	// Truncated is set when the same file starts over after a
	// copytruncate.
	Truncated bool
}

// File is one path a Tailer follows, and the consumer's Hooks for it.
// A File belongs to one Run at a time.
type File struct {
	path  string
	hooks Hooks

	cfg *Config
	lr  *LineReader
	f   *os.File
	// name is what f was opened as: path, or path.1.
	name string
	dev  uint64
	ino  uint64
	// draining: f is no longer the file at path (renamed away, or the
	// path.1 found at start); it is read to its end before moving on.
	draining   bool
	drainSince time.Time
	lastData   time.Time
	fp         string
	fpLen      int
	// startAtEnd applies StartAt = "end" to a file found on a first start.
	startAtEnd bool
}

// NewFile returns a File following path with h.
func NewFile(path string, h Hooks) *File {
	return &File{path: path, hooks: h}
}

// Path returns the followed path.
func (fl *File) Path() string { return fl.path }

// Next returns the offset after the last line handed to Hooks.Line (and
// its newline, if it had one): during Line, where reading resumes after
// that line.
func (fl *File) Next() int64 { return fl.lr.Consumed() }

// Pos returns the position of offset off in the file being read: its
// identity, off, and the context offset Hooks.Context gives. With no file
// open it is the path alone (whatever appears there is read from 0).
func (fl *File) Pos(off int64) FilePos {
	if fl.f == nil {
		return FilePos{Path: fl.path}
	}
	if fl.fpLen < fingerprintMax {
		fl.fp, fl.fpLen = fingerprint(fl.f)
	}
	ctxOff := off
	if fl.hooks.Context != nil {
		ctxOff = min(fl.hooks.Context(off), off)
	}
	return FilePos{
		Path: fl.path, Device: fl.dev, Inode: fl.ino,
		Fingerprint: fl.fp, FingerprintLen: fl.fpLen,
		Offset: off, ContextOffset: ctxOff,
	}
}

// Run follows files from saved (by path) until ctx is done, and returns
// ctx.Err() then, or the first error a hook returns. first says the
// consumer starts for the first time (it has no Position at all):
// Config.StartAt applies to the files that exist.
//
// Rotation, as logrotate does it:
//   - rename + create (Debian's rsyslog stanza, and auditd's own
//     num_logs rotation): the old file is drained to its end through the
//     open descriptor, until it has been quiet for RotateWait (rsyslog
//     writes to it until its HUP), and only then is the new file read from
//     offset 0;
//   - copytruncate: the same inode shrinks below what was read; reading
//     restarts at 0 (lines written between the copy and the truncate are
//     lost, by logrotate's design);
//   - delaycompress: after a restart whose position names a file that is
//     now path.1, path.1 is drained from the saved offset first; .gz files
//     are never read.
//
// A missing file is waited for. A partial last line waits for its
// newline, except at the end of a drained rotated file, where nobody will
// finish it. fsnotify (on the files' directories) wakes the Tailer; a poll
// every PollInterval is the safety net.
func (t *Tailer) Run(ctx context.Context, saved map[string]FilePos, first bool, files ...*File) error {
	cfg := &t.cfg
	defer func() {
		for _, fl := range files {
			if fl.f != nil {
				fl.f.Close()
				fl.f = nil
			}
		}
	}()
	// Names whose changes wake the Tailer: the files and their .1.
	relevant := map[string]bool{}
	for _, fl := range files {
		relevant[filepath.Clean(fl.path)] = true
		relevant[filepath.Clean(fl.path)+".1"] = true
	}
	for _, fl := range files {
		fl.cfg = cfg
		fl.f, fl.draining, fl.fp, fl.fpLen = nil, false, "", 0
		fl.startAtEnd = first && cfg.StartAt == StartEnd
		fl.lr = NewLineReader(nil, 0, cfg.MaxLineBytes)
		fl.lr.TooLong = fl.tooLong
		// A saved entry without identity: the file was missing when it was
		// saved, so whatever is there now is new and read from its start.
		if sp, ok := saved[fl.path]; ok && sp.Inode != 0 {
			fl.resume(sp)
		}
	}

	watcher, err := fsnotify.NewWatcher()
	var events <-chan fsnotify.Event
	var werrs <-chan error
	watched := map[string]bool{}
	if err != nil {
		cfg.Logger.Warn("tail: no fsnotify, polling only", "err", err)
	} else {
		defer watcher.Close()
		events, werrs = watcher.Events, watcher.Errors
	}
	watchDirs := func() {
		if watcher == nil {
			return
		}
		for _, fl := range files {
			d := filepath.Dir(fl.path)
			if !watched[d] && watcher.Add(d) == nil {
				watched[d] = true
			}
		}
	}
	watchDirs()
	tick := time.NewTicker(cfg.PollInterval)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var timerC <-chan time.Time
	for wake := true; ; {
		if wake {
			var due time.Time
			for _, fl := range files {
				if err := fl.step(ctx); err != nil {
					return err
				}
				if d := fl.due(); !d.IsZero() && (due.IsZero() || d.Before(due)) {
					due = d
				}
			}
			// Held-back lines and a draining rotated file need a step when
			// their quiet time is up, not only at the next poll.
			timerC = nil
			if !due.IsZero() {
				timer.Reset(max(time.Until(due), time.Millisecond))
				timerC = timer.C
			}
		}
		wake = true
		select {
		case <-timerC:
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-events:
			// Other files in the directory (syslog, kern.log) change all
			// the time; only ours wake the Tailer.
			wake = relevant[filepath.Clean(ev.Name)]
		drain:
			for {
				select {
				case ev := <-events:
					wake = wake || relevant[filepath.Clean(ev.Name)]
				default:
					break drain
				}
			}
		case err := <-werrs:
			cfg.Logger.Warn("tail: fsnotify", "err", err)
			wake = false
		case <-tick.C:
			watchDirs()
		}
	}
}

func (cfg *Config) problem(p collectors.Problem) {
	if cfg.Problems != nil {
		cfg.Problems.Report(p)
	}
	cfg.Logger.Warn("tail: "+p.Reason, "where", p.Where)
}

func (fl *File) tooLong(off int64, prefix []byte) {
	if fl.hooks.TooLong != nil {
		fl.hooks.TooLong(off, prefix)
		return
	}
	fl.cfg.problem(collectors.Problem{Where: fmt.Sprintf("%s:offset %d", fl.path, off), Reason: fmt.Sprintf("line longer than %d bytes; skipped", fl.cfg.MaxLineBytes)})
}

func (fl *File) held() bool { return fl.hooks.Held != nil && fl.hooks.Held() }

func (fl *File) flush(resume int64, truncated bool) error {
	if fl.hooks.Flush == nil {
		return nil
	}
	return fl.hooks.Flush(resume, truncated)
}

func (fl *File) checkpoint(off int64) {
	if fl.hooks.Checkpoint != nil {
		fl.hooks.Checkpoint(fl.Pos(off))
	}
}

// resume opens the file a saved position names: path itself, or path.1
// when the file was rotated while the consumer was down.
func (fl *File) resume(sp FilePos) {
	// copied: the file at path is still the saved one but its head
	// changed, a copytruncate while the consumer was down; path.1 is its
	// copy (another inode) if it starts with the saved head.
	copied := false
	for _, name := range []string{fl.path, fl.path + ".1"} {
		f, dev, ino, err := openFile(name)
		if err != nil {
			continue
		}
		same := dev == sp.Device && ino == sp.Inode
		head := fingerprintMatches(f, sp.Fingerprint, sp.FingerprintLen)
		if name == fl.path && same && !head {
			copied = sp.FingerprintLen > 0
		}
		if !head || !same && !(copied && name != fl.path) {
			f.Close()
			continue
		}
		off, ctxOff := sp.Offset, sp.ContextOffset
		if fi, err := f.Stat(); err == nil && fi.Size() < off {
			fl.cfg.problem(collectors.Problem{Where: name, Reason: fmt.Sprintf("file is shorter (%d) than the saved offset %d (truncated); reading from the start", fi.Size(), off)})
			off, ctxOff = 0, 0
		}
		fl.attach(f, Opening{Name: name, From: ctxOff, Done: off, Resumed: true}, dev, ino)
		fl.draining, fl.drainSince = name != fl.path, time.Now()
		return
	}
	if copied {
		fl.cfg.problem(collectors.Problem{Where: fl.path, Reason: "the file was truncated while stopped (copytruncate?) and " + filepath.Base(fl.path) + ".1 is not its copy; reading the current file from the start"})
	} else if _, err := os.Stat(fl.path); err == nil {
		fl.cfg.problem(collectors.Problem{Where: fl.path, Reason: "the file of the saved position is neither this file nor its .1 (rotated more than once while stopped?); reading the current file from the start"})
	}
	// step opens the file at path from offset 0.
}

// attach makes f the file being read, as o says.
func (fl *File) attach(f *os.File, o Opening, dev, ino uint64) {
	if _, err := f.Seek(o.From, io.SeekStart); err != nil {
		o.From, o.Done = 0, 0
	}
	fl.f, fl.name, fl.dev, fl.ino = f, o.Name, dev, ino
	fl.fp, fl.fpLen = "", 0
	fl.lr.Reset(f, o.From)
	fl.draining = false
	fl.lastData = time.Now()
	if fl.hooks.Open != nil {
		fl.hooks.Open(o)
	}
}

// step reads what is new, handles truncation and rotation, and flushes
// held-back lines after IdleAfter of quiet.
func (fl *File) step(ctx context.Context) error {
	cfg := fl.cfg
	if fl.f == nil {
		f, dev, ino, err := openFile(fl.path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				cfg.Logger.Warn("tail: cannot open", "path", fl.path, "err", err)
			}
			return nil
		}
		o, cut := Opening{Name: fl.path}, false
		if fl.startAtEnd {
			fl.startAtEnd = false
			o.From, cut = endOf(f)
			o.Done = o.From
		}
		fl.attach(f, o, dev, ino)
		if cut {
			// Placed in the middle of a line: its rest is not a line.
			fl.lr.SkipPartial()
		}
	}
	if fl.truncated() {
		cfg.Logger.Info("tail: file truncated, reading from the start", "path", fl.name, "read", fl.lr.ReadPos())
		if err := fl.flush(0, true); err != nil {
			return err
		}
		if _, err := fl.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("tail: seek %s: %w", fl.name, err)
		}
		fl.lr.Reset(fl.f, 0)
		fl.fp, fl.fpLen = "", 0
		if fl.hooks.Open != nil {
			fl.hooks.Open(Opening{Name: fl.name, Truncated: true})
		}
		fl.checkpoint(0)
		return fl.step(ctx)
	}
	got, err := fl.readAvailable(ctx)
	if err != nil {
		return err
	}
	if fl.fpLen < fingerprintMax {
		// The head the next truncation check compares with.
		fl.fp, fl.fpLen = fingerprint(fl.f)
	}
	now := time.Now()
	if got {
		fl.lastData = now
	}
	if !fl.draining {
		st, err := os.Stat(fl.path)
		if err != nil || !sameFile(st, fl.dev, fl.ino) {
			cfg.Logger.Info("tail: file rotated, draining the old one", "path", fl.path)
			fl.draining, fl.drainSince = true, now
		}
	}
	// The writer keeps writing to the renamed file until it reopens (after
	// logrotate's HUP, if any): the old file is done only once it has been
	// quiet for RotateWait since the rotation was seen.
	if fl.draining && !got && now.Sub(fl.lastData) >= cfg.RotateWait && now.Sub(fl.drainSince) >= cfg.RotateWait {
		return fl.finishOld(ctx)
	}
	if fl.held() && now.Sub(fl.lastData) >= cfg.IdleAfter {
		if err := fl.flush(fl.lr.Consumed(), false); err != nil {
			return err
		}
	}
	if !fl.held() {
		fl.checkpoint(fl.lr.Consumed())
	}
	return nil
}

// truncated reports a copytruncate: the same file is shorter than what
// was read, or its head is no longer the one fingerprinted (the writer
// wrote past the old offset before the truncation was seen).
func (fl *File) truncated() bool {
	fi, err := fl.f.Stat()
	if err != nil {
		return false
	}
	if fi.Size() < fl.lr.ReadPos() {
		return true
	}
	return fl.fpLen > 0 && !fingerprintMatches(fl.f, fl.fp, fl.fpLen)
}

// endOf returns the size of f, and whether its last line is cut (no
// newline yet).
func endOf(f *os.File) (int64, bool) {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end == 0 {
		return 0, false
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], end-1); err == nil && last[0] != '\n' {
		return end, true
	}
	return end, false
}

// due returns when this file next needs a step without new data: to flush
// held-back lines, or to finish a drained rotated file. Zero: no need.
func (fl *File) due() time.Time {
	cfg := fl.cfg
	var d time.Time
	if fl.f != nil && fl.held() {
		d = fl.lastData.Add(cfg.IdleAfter)
	}
	if fl.f != nil && fl.draining {
		end := fl.lastData
		if fl.drainSince.After(end) {
			end = fl.drainSince
		}
		end = end.Add(cfg.RotateWait)
		if d.IsZero() || end.Before(d) {
			d = end
		}
	}
	return d
}

// finishOld ends a drained rotated file (its partial last line counts as
// a line now: nobody will finish it) and moves to the file at path.
func (fl *File) finishOld(ctx context.Context) error {
	if line, off := fl.lr.Partial(); line != nil {
		if err := fl.hooks.Line(line, off); err != nil {
			return err
		}
	}
	if err := fl.flush(fl.lr.Consumed(), false); err != nil {
		return err
	}
	fl.f.Close()
	fl.f = nil
	fl.checkpoint(0)
	f, dev, ino, err := openFile(fl.path)
	if err != nil {
		return nil // not there yet: step opens it when it appears
	}
	fl.attach(f, Opening{Name: fl.path}, dev, ino)
	fl.checkpoint(0)
	return fl.step(ctx)
}

func (fl *File) readAvailable(ctx context.Context) (bool, error) {
	before := fl.lr.ReadPos()
	for n := 0; ; n++ {
		if n&1023 == 1023 {
			if err := ctx.Err(); err != nil {
				return true, err
			}
		}
		line, off, err := fl.lr.Next()
		if err == ErrNoLine {
			return fl.lr.ReadPos() != before, nil
		}
		if err != nil {
			fl.cfg.problem(collectors.Problem{Where: fl.path, Reason: "read: " + err.Error()})
			return fl.lr.ReadPos() != before, nil
		}
		if err := fl.hooks.Line(line, off); err != nil {
			return true, err
		}
	}
}

func openFile(name string) (*os.File, uint64, uint64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, 0, fmt.Errorf("%s is not a regular file", name)
	}
	dev, ino := fileID(fi)
	return f, dev, ino, nil
}

func fileID(fi fs.FileInfo) (uint64, uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}

func sameFile(fi fs.FileInfo, dev, ino uint64) bool {
	d, i := fileID(fi)
	return d == dev && i == ino
}

// fingerprint hashes the first fingerprintMax bytes of f (fewer when f is
// shorter).
func fingerprint(f *os.File) (string, int) {
	buf := make([]byte, fingerprintMax)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", 0
	}
	sum := sha256.Sum256(buf[:n])
	return hex.EncodeToString(sum[:]), n
}

func fingerprintMatches(f *os.File, want string, n int) bool {
	if n == 0 {
		return true
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return false
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]) == want
}
