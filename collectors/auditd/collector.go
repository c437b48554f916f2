package auditd

import (
	"context"
	"fmt"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/tail"
)

// LineFollower is what the collector needs from a rotation-aware file
// tailer: every complete line of the file at path, in order, across
// rotations and restarts, each with the Position to resume after it.
//
// Follow calls line for each complete line (without its newline); next
// resumes after it. It calls idle (if non-nil) when it has caught up with
// the file and no new data came for a short while, so that held events
// can be flushed. It resumes from start (nil: the follower's first start)
// and returns ctx.Err() when ctx is done, or the first error line returns.
//
// The shared tailer, *tail.Tailer, is the one New uses by default.
type LineFollower interface {
	Follow(ctx context.Context, path string, start collectors.Position,
		line func(b []byte, next collectors.Position) error, idle func() error) error
}

// Collector follows audit.log through a LineFollower.
type Collector struct {
	set    collectors.Settings
	cfg    Config
	follow LineFollower
	now    func() time.Time
}

var (
	_ collectors.Collector = (*Collector)(nil)
	_ LineFollower         = (*tail.Tailer)(nil)
	_ fileLineFollower     = (*tail.Tailer)(nil)
)

// New returns a collector for cfg reading through f; nil f means the
// shared tailer (collectors/internal/tail) configured by cfg, reporting
// to set.Logger and set.Problems.
func New(set collectors.Settings, cfg *Config, f LineFollower) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, diags
	}
	if f == nil {
		t, err := tail.New(cfg.tailConfig(set))
		if err != nil {
			return nil, fmt.Errorf("auditd: %w", err)
		}
		f = t
	}
	return &Collector{set: set, cfg: *cfg, follow: f, now: time.Now}, nil
}

// Run follows the file from start and emits one record per change. Each
// record's Position is the follower's position after the record's last
// line: resuming there never emits it again.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	p := &Parser{privileged: c.cfg.privileged(), hostname: c.set.Hostname, instance: c.set.Name, problems: c.set.Problems, now: c.now}
	s := p.newStream(c.cfg.Path, func(outs []finishedEvent) error {
		recs := make([]collectors.Record, len(outs))
		for i, o := range outs {
			recs[i] = collectors.Record{Event: o.ev, Position: o.mark}
		}
		return out.Emit(ctx, recs...)
	})
	if ff, ok := c.follow.(fileLineFollower); ok {
		return ff.FollowLines(ctx, c.cfg.Path, start, func(l tail.Line) error {
			s.file = l.Name
			return s.line(l.Bytes, l.Offset, l.Offset+int64(len(l.Bytes))+1, l.Next)
		}, s.flush)
	}
	var off int64
	return c.follow.Follow(ctx, c.cfg.Path, start, func(b []byte, next collectors.Position) error {
		// Offsets are counted from where this run started reading; the
		// follower's Position is what resumes.
		o := off
		off += int64(len(b)) + 1
		if len(b) > MaxLineLength {
			s.lineNo++
			s.problem(o, "record longer than the limit; skipped", b[:120])
			return nil
		}
		return s.line(b, o, off, next)
	}, s.flush)
}

// fileLineFollower is what the shared tailer offers besides Follow: each
// line with the file it was read from (audit.log.1 while a rotated log is
// drained) and its offset there, for Source.File and Source.Offset. It
// bounds lines itself (Config.MaxLineBytes), reporting longer ones.
type fileLineFollower interface {
	FollowLines(ctx context.Context, path string, start collectors.Position,
		line func(l tail.Line) error, idle func() error) error
}
