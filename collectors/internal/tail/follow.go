package tail

import (
	"context"

	"github.com/provtrail/provtrail/collectors"
)

// Follow follows the one file at path from start (a Position from an
// earlier Follow of path, or nil for a first start) until ctx is done.
// It calls line for every complete line, without its newline, with the
// Position that resumes just after it, and idle (if non-nil) when lines
// came and then Config.IdleAfter passed without more, before a drained
// rotated file is left, and before reading starts over after a
// copytruncate. It returns ctx.Err(), or the first error line or idle
// returns. A start that does not decode is reported as a Problem and
// reading starts over.
//
// A consumer that holds lines back (to merge them into one event) emits
// each event with the Position of its last line once every earlier event
// is out: resuming there neither loses nor repeats one. What idle flushes
// after a copytruncate carries Positions in the old content; resuming from
// one finds the content again in the path.1 copy (see Run).
func (t *Tailer) Follow(ctx context.Context, path string, start collectors.Position,
	line func(b []byte, next collectors.Position) error, idle func() error) error {
	return t.FollowLines(ctx, path, start, func(l Line) error { return line(l.Bytes, l.Next) }, idle)
}

// Line is one line FollowLines hands over.
type Line struct {
	// Bytes is the line without its newline, valid until the callback
	// returns.
	Bytes []byte
	// Name is the file it was read from (the path, or path.1 while a
	// rotated file is drained) and Offset where it starts in that file.
	Name   string
	Offset int64
	// Next is the Position that resumes just after the line.
	Next collectors.Position
}

// FollowLines is Follow with each line's file and offset besides its
// Position.
func (t *Tailer) FollowLines(ctx context.Context, path string, start collectors.Position,
	line func(l Line) error, idle func() error) error {
	saved, err := Decode[FilePos](start)
	if err != nil {
		t.cfg.problem(collectors.Problem{Where: "position", Reason: err.Error() + "; starting over"})
		saved = nil
	}
	var (
		fl   *File
		name string
		done int64 // lines before it were handled before the restart
		held bool  // lines went to line since the last idle
	)
	fl = NewFile(path, Hooks{
		Open: func(o Opening) { name, done = o.Name, o.Done },
		Line: func(b []byte, off int64) error {
			if off < done {
				return nil
			}
			held = true
			return line(Line{Bytes: b, Name: name, Offset: off, Next: Encode([]FilePos{fl.Pos(fl.Next())})})
		},
		Held: func() bool { return held },
		Flush: func(int64, bool) error {
			held = false
			if idle == nil {
				return nil
			}
			return idle()
		},
	})
	return t.Run(ctx, saved, start == nil, fl)
}
