package authlog

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/tail"
)

// Collector follows auth files by name and emits one record per change.
//
// The files are followed by the shared tailer (collectors/internal/tail):
// rename rotation (the old file drained until quiet for rotate_wait),
// copytruncate, a restart while the position is in path.1 (.gz files are
// never read), files that do not exist yet, partial last lines, fsnotify
// wake-ups with a poll every poll_interval as the safety net. What is
// authlog's own: the line parser's state follows the file being read
// (twin merging, sudo and su context), events held for twins are flushed
// after flush_after of quiet, and the Position re-reads context and skips
// events already emitted (see position).
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
	return tail.Encode(fps)
}

// follower is the parser side of one configured path.
type follower struct {
	r      *run
	file   *tail.File
	parser *lineParser
	// truncated is set while the events held from before a copytruncate
	// are flushed: their positions point at the new file's start.
	truncated bool
	// safe is this file's part of every Position emitted.
	safe filePos
	// recs is emit's buffer.
	recs []collectors.Record
	// savedSkip is the saved position's skip list, for the file it names.
	savedSkip []string
}

// Run follows the configured files from start until ctx is done.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	saved, err := tail.Decode[filePos](start)
	if err != nil {
		c.problem(collectors.Problem{Where: "position", Reason: "authlog " + err.Error() + "; starting over"})
		saved = map[string]filePos{}
	}
	tl, err := tail.New(tail.Config{
		PollInterval: c.cfg.PollInterval,
		RotateWait:   c.cfg.RotateWait,
		IdleAfter:    c.cfg.FlushAfter,
		MaxLineBytes: c.opts.maxLine,
		StartAt:      c.cfg.StartAt,
		Logger:       c.log,
		Problems:     c.set.Problems,
	})
	if err != nil {
		return fmt.Errorf("authlog: %w", err)
	}
	r := &run{}
	resume := map[string]tail.FilePos{}
	files := make([]*tail.File, 0, len(c.cfg.Paths))
	for _, p := range c.cfg.Paths {
		fl := &follower{r: r}
		fl.parser = newLineParser(c.opts, p, nil)
		fl.parser.sink = func(evs []parsed, resume int64) error { return fl.emit(ctx, out, evs, resume) }
		if sp, ok := saved[p]; ok && sp.Inode != 0 {
			fl.safe, fl.savedSkip = sp, sp.Skip
			resume[p] = sp.FilePos
		}
		fl.file = tail.NewFile(p, tail.Hooks{
			Open: fl.open,
			Line: fl.parser.line,
			TooLong: func(off int64, prefix []byte) {
				fl.parser.lineNo++
				fl.parser.problem(off, fmt.Sprintf("line longer than %d bytes; skipped", c.opts.maxLine), prefix)
			},
			Held: func() bool { return len(fl.parser.pend) > 0 },
			Flush: func(resume int64, truncated bool) error {
				fl.truncated = truncated
				defer func() { fl.truncated = false }()
				return fl.parser.flush(resume)
			},
			Context:    fl.parser.contextStart,
			Checkpoint: func(p tail.FilePos) { fl.safe = filePos{FilePos: p} },
		})
		r.followers = append(r.followers, fl)
		files = append(files, fl.file)
	}
	return tl.Run(ctx, resume, start == nil, files...)
}

func (c *Collector) problem(p collectors.Problem) {
	if c.set.Problems != nil {
		c.set.Problems.Report(p)
	}
	c.log.Warn("authlog: "+p.Reason, "where", p.Where)
}

// open resets the parser's per-file state for the file reading starts
// in: context from an older file is not replayed, and what lies before
// the saved offset (or is in the saved skip list) was emitted before.
func (fl *follower) open(o tail.Opening) {
	p := fl.parser
	p.gen++
	p.file = o.Name
	p.lineNo = 0
	p.lineKnown = o.From == 0
	p.suppressBefore = o.Done
	p.skip = nil
	if o.Resumed && len(fl.savedSkip) > 0 {
		p.skip = make(map[string]bool, len(fl.savedSkip))
		for _, id := range fl.savedSkip {
			p.skip[id] = true
		}
	}
}

// emit turns a flush of the file's parser into records.
func (fl *follower) emit(ctx context.Context, out collectors.Emitter, evs []parsed, resume int64) error {
	base := filePos{FilePos: fl.file.Pos(resume)}
	fps := recordPositions(evs, resume, base, fl.parser.contextStart)
	// Emitters do not keep the slice (see collectors.Emitter): reuse it.
	recs := slices.Grow(fl.recs[:0], len(evs))[:len(evs)]
	defer func() { clear(recs); fl.recs = recs[:0] }()
	for i := range evs {
		if fl.truncated {
			fps[i].Offset, fps[i].ContextOffset, fps[i].Skip = 0, 0, nil
		}
		fl.safe = fps[i]
		recs[i] = collectors.Record{Event: evs[i].ev, Position: fl.r.position()}
	}
	return out.Emit(ctx, recs...)
}
