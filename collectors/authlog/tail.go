package authlog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/provtrail/provtrail/collectors"
)

// fingerprintMax is how much of a file's head its fingerprint covers.
const fingerprintMax = 1024

// Collector follows auth files by name and emits one record per change.
//
// Rotation, as logrotate does it:
//   - rename + create (Debian's rsyslog stanza): the old file is drained
//     to its end through the open descriptor, until it has been quiet for
//     rotate_wait (rsyslog writes to it until its HUP), and only then is the
//     new file read from offset 0;
//   - copytruncate: the same inode shrinks below what was read; reading
//     restarts at 0 (lines written between the copy and the truncate are
//     lost, by logrotate's design);
//   - delaycompress: after a restart whose position names a file that is
//     now path.1, path.1 is drained from the saved offset first; .gz files
//     are never read.
//
// A missing file is waited for. A partial last line waits for its newline.
// fsnotify (on the files' directories) wakes the collector; a poll every
// poll_interval is the safety net.
type Collector struct {
	cfg  *Config
	set  collectors.Settings
	log  *slog.Logger
	opts options
	now  func() time.Time
}

var _ collectors.Collector = (*Collector)(nil)

// run is the state of one Run call.
type run struct {
	c         *Collector
	followers []*follower
}

// position returns the collector Position covering every file.
func (r *run) position() collectors.Position {
	fps := make([]filePos, 0, len(r.followers))
	for _, fl := range r.followers {
		if fl.safe.Path != "" {
			fps = append(fps, fl.safe)
		}
	}
	return encodePosition(fps)
}

// follower follows one configured path.
type follower struct {
	r      *run
	path   string
	parser *lineParser
	lr     *lineReader
	f      *os.File
	dev    uint64
	ino    uint64
	// draining: f is no longer the file at path (renamed away, or the
	// path.1 found at start); it is read to its end before moving on.
	draining   bool
	drainSince time.Time
	lastData   time.Time
	// truncated is set while the events held from before a copytruncate
	// are flushed: their positions point at the new file's start.
	truncated bool
	fp        string
	fpLen     int
	// safe is this file's part of every Position emitted.
	safe filePos
	// startAtEnd applies start_at = "end" to a file found on a first start.
	startAtEnd bool
}

// Run follows the configured files from start until ctx is done.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	saved, err := decodePosition(start)
	if err != nil {
		c.problem(collectors.Problem{Where: "position", Reason: err.Error() + "; starting over"})
		saved = map[string]filePos{}
	}
	r := &run{c: c}
	defer func() {
		for _, fl := range r.followers {
			if fl.f != nil {
				fl.f.Close()
			}
		}
	}()
	// Names whose changes wake the collector: the files and their .1.
	relevant := map[string]bool{}
	for _, p := range c.cfg.Paths {
		relevant[filepath.Clean(p)] = true
		relevant[filepath.Clean(p)+".1"] = true
	}
	for _, p := range c.cfg.Paths {
		fl := &follower{r: r, path: p, startAtEnd: start == nil && c.cfg.StartAt == "end"}
		fl.parser = newLineParser(c.opts, p, nil)
		fl.parser.sink = func(evs []parsed, resume int64) error { return fl.emit(ctx, out, evs, resume) }
		fl.lr = newLineReader(nil, 0, c.opts.maxLine)
		fl.lr.tooLong = func(off int64, prefix []byte) {
			fl.parser.lineNo++
			fl.parser.problem(off, fmt.Sprintf("line longer than %d bytes; skipped", c.opts.maxLine), prefix)
		}
		// A saved entry without identity: the file was missing when it was
		// saved, so whatever is there now is new and read from its start.
		if sp, ok := saved[p]; ok && sp.Inode != 0 {
			fl.safe = sp
			fl.resume(sp)
		}
		r.followers = append(r.followers, fl)
	}

	watcher, err := fsnotify.NewWatcher()
	var events <-chan fsnotify.Event
	var werrs <-chan error
	watched := map[string]bool{}
	if err != nil {
		c.log.Warn("authlog: no fsnotify, polling only", "err", err)
	} else {
		defer watcher.Close()
		events, werrs = watcher.Events, watcher.Errors
	}
	watchDirs := func() {
		if watcher == nil {
			return
		}
		for _, p := range c.cfg.Paths {
			d := filepath.Dir(p)
			if !watched[d] && watcher.Add(d) == nil {
				watched[d] = true
			}
		}
	}
	watchDirs()
	tick := time.NewTicker(c.cfg.PollInterval)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var timerC <-chan time.Time
	for wake := true; ; {
		if wake {
			var due time.Time
			for _, fl := range r.followers {
				if err := fl.step(ctx); err != nil {
					return err
				}
				if d := fl.due(); !d.IsZero() && (due.IsZero() || d.Before(due)) {
					due = d
				}
			}
			// Held-back events and a draining rotated file need a step
			// when their quiet time is up, not only at the next poll.
			timerC = nil
			if !due.IsZero() {
				timer.Reset(max(due.Sub(c.now()), time.Millisecond))
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
			// the time; only ours wake the collector.
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
			c.log.Warn("authlog: fsnotify", "err", err)
			wake = false
		case <-tick.C:
			watchDirs()
		}
	}
}

func (c *Collector) problem(p collectors.Problem) {
	if c.set.Problems != nil {
		c.set.Problems.Report(p)
	}
	c.log.Warn("authlog: "+p.Reason, "where", p.Where)
}

// resume opens the file a saved position names: path itself, or path.1
// when the file was rotated while the agent was down.
func (fl *follower) resume(sp filePos) {
	c := fl.r.c
	for _, name := range []string{fl.path, fl.path + ".1"} {
		f, dev, ino, err := openFile(name)
		if err != nil {
			continue
		}
		if dev != sp.Device || ino != sp.Inode || !fingerprintMatches(f, sp.Fingerprint, sp.FingerprintLen) {
			f.Close()
			continue
		}
		off, ctxOff := sp.Offset, sp.ContextOffset
		if fi, err := f.Stat(); err == nil && fi.Size() < off {
			c.problem(collectors.Problem{Where: name, Reason: fmt.Sprintf("file is shorter (%d) than the saved offset %d (truncated); reading from the start", fi.Size(), off)})
			off, ctxOff = 0, 0
		}
		fl.attach(f, name, dev, ino, ctxOff, off, sp.Skip)
		fl.draining, fl.drainSince = name != fl.path, c.now()
		return
	}
	if _, err := os.Stat(fl.path); err == nil {
		c.problem(collectors.Problem{Where: fl.path, Reason: "the file of the saved position is neither this file nor its .1 (rotated more than once while stopped?); reading the current file from the start"})
	}
	// step opens the file at path from offset 0.
}

// attach makes f (opened as name) the file being read, from ctxOff, with
// everything before off already emitted.
func (fl *follower) attach(f *os.File, name string, dev, ino uint64, ctxOff, off int64, skip []string) {
	if _, err := f.Seek(ctxOff, io.SeekStart); err != nil {
		ctxOff = 0
		off = 0
	}
	fl.f, fl.dev, fl.ino = f, dev, ino
	fl.fp, fl.fpLen = "", 0
	fl.lr.reset(f, ctxOff)
	fl.parser.gen++
	fl.parser.file = name
	fl.parser.lineNo = 0
	fl.parser.lineKnown = ctxOff == 0
	fl.parser.suppressBefore = off
	fl.parser.skip = nil
	if len(skip) > 0 {
		fl.parser.skip = make(map[string]bool, len(skip))
		for _, id := range skip {
			fl.parser.skip[id] = true
		}
	}
	fl.draining = false
	fl.lastData = fl.r.c.now()
}

// step reads what is new, handles truncation and rotation, and flushes
// held-back events after flush_after of quiet.
func (fl *follower) step(ctx context.Context) error {
	c := fl.r.c
	if fl.f == nil {
		f, dev, ino, err := openFile(fl.path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("authlog: cannot open", "path", fl.path, "err", err)
			}
			return nil
		}
		fl.attach(f, fl.path, dev, ino, 0, 0, nil)
		if fl.startAtEnd {
			fl.startAtEnd = false
			fl.seekEnd()
		}
	}
	got, err := fl.readAvailable(ctx)
	if err != nil {
		return err
	}
	now := c.now()
	if got {
		fl.lastData = now
	}
	fi, err := fl.f.Stat()
	if err == nil && fi.Size() < fl.lr.readPos() {
		// copytruncate: same inode, shorter than what was read.
		c.log.Info("authlog: file truncated, reading from the start", "path", fl.path, "size", fi.Size(), "read", fl.lr.readPos())
		fl.truncated = true
		err := fl.parser.flush(0)
		fl.truncated = false
		if err != nil {
			return err
		}
		if _, err := fl.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("authlog: seek %s: %w", fl.path, err)
		}
		fl.lr.reset(fl.f, 0)
		fl.fp, fl.fpLen = "", 0
		fl.parser.gen++
		fl.parser.lineNo, fl.parser.lineKnown = 0, true
		fl.parser.suppressBefore, fl.parser.skip = 0, nil
		fl.safe = fl.currentPos(0)
		return fl.step(ctx)
	}
	if !fl.draining {
		st, err := os.Stat(fl.path)
		if err != nil || !sameFile(st, fl.dev, fl.ino) {
			c.log.Info("authlog: file rotated, draining the old one", "path", fl.path)
			fl.draining, fl.drainSince = true, now
		}
	}
	// The writer keeps writing to the renamed file until it reopens (after
	// logrotate's HUP, if any): the old file is done only once it has been
	// quiet for rotate_wait since the rotation was seen.
	if fl.draining && !got && now.Sub(fl.lastData) >= c.cfg.RotateWait && now.Sub(fl.drainSince) >= c.cfg.RotateWait {
		return fl.finishOld(ctx)
	}
	if len(fl.parser.pend) > 0 && now.Sub(fl.lastData) >= c.cfg.FlushAfter {
		if err := fl.parser.flush(fl.lr.consumed()); err != nil {
			return err
		}
	}
	if len(fl.parser.pend) == 0 {
		fl.safe = fl.currentPos(fl.lr.consumed())
	}
	return nil
}

// due returns when this file next needs a step without new data: to flush
// held-back events, or to finish a drained rotated file. Zero: no need.
func (fl *follower) due() time.Time {
	c := fl.r.c
	var d time.Time
	if fl.f != nil && len(fl.parser.pend) > 0 {
		d = fl.lastData.Add(c.cfg.FlushAfter)
	}
	if fl.f != nil && fl.draining {
		end := fl.lastData
		if fl.drainSince.After(end) {
			end = fl.drainSince
		}
		end = end.Add(c.cfg.RotateWait)
		if d.IsZero() || end.Before(d) {
			d = end
		}
	}
	return d
}

// finishOld ends a drained rotated file (its partial last line counts as
// a line now: nobody will finish it) and moves to the file at path.
func (fl *follower) finishOld(ctx context.Context) error {
	if line, off := fl.lr.partial(); line != nil {
		if err := fl.parser.line(line, off); err != nil {
			return err
		}
	}
	if err := fl.parser.flush(fl.lr.consumed()); err != nil {
		return err
	}
	fl.f.Close()
	fl.f = nil
	fl.safe = filePos{Path: fl.path}
	f, dev, ino, err := openFile(fl.path)
	if err != nil {
		return nil // not there yet: step opens it when it appears
	}
	fl.attach(f, fl.path, dev, ino, 0, 0, nil)
	fl.safe = fl.currentPos(0)
	return fl.step(ctx)
}

// seekEnd skips what the file holds now (start_at = "end"), and the rest
// of a line cut at the end.
func (fl *follower) seekEnd() {
	end, err := fl.f.Seek(0, io.SeekEnd)
	if err != nil {
		return
	}
	fl.lr.reset(fl.f, end)
	fl.parser.lineKnown = end == 0
	if end > 0 {
		var last [1]byte
		if _, err := fl.f.ReadAt(last[:], end-1); err == nil && last[0] != '\n' {
			fl.lr.skipping = true
		}
	}
}

func (fl *follower) readAvailable(ctx context.Context) (bool, error) {
	before := fl.lr.readPos()
	for n := 0; ; n++ {
		if n&1023 == 1023 {
			if err := ctx.Err(); err != nil {
				return true, err
			}
		}
		line, off, err := fl.lr.next()
		if err == errNoLine {
			return fl.lr.readPos() != before, nil
		}
		if err != nil {
			fl.r.c.problem(collectors.Problem{Where: fl.path, Reason: "read: " + err.Error()})
			return fl.lr.readPos() != before, nil
		}
		if err := fl.parser.line(line, off); err != nil {
			return true, err
		}
	}
}

// emit turns a flush of the file's parser into records.
func (fl *follower) emit(ctx context.Context, out collectors.Emitter, evs []parsed, resume int64) error {
	base := fl.currentPos(resume)
	fps := recordPositions(evs, resume, base, fl.parser.contextStart)
	recs := make([]collectors.Record, len(evs))
	for i := range evs {
		if fl.truncated {
			fps[i].Offset, fps[i].ContextOffset, fps[i].Skip = 0, 0, nil
		}
		fl.safe = fps[i]
		recs[i] = collectors.Record{Event: evs[i].ev, Position: fl.r.position()}
	}
	return out.Emit(ctx, recs...)
}

// currentPos is this file's identity with resume offset off.
func (fl *follower) currentPos(off int64) filePos {
	if fl.f == nil {
		return filePos{Path: fl.path}
	}
	if fl.fpLen < fingerprintMax {
		fl.fp, fl.fpLen = fingerprint(fl.f)
	}
	return filePos{
		Path: fl.path, Device: fl.dev, Inode: fl.ino,
		Fingerprint: fl.fp, FingerprintLen: fl.fpLen,
		Offset: off, ContextOffset: fl.parser.contextStart(off),
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
