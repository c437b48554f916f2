package authlog

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/tail"
	"github.com/provtrail/provtrail/event"
)

const (
	// mergeWindow bounds how far apart twin lines of one process may be.
	mergeWindow = 5 * time.Second
	// maxPending bounds the events held back for twin merging.
	maxPending = 256
	// maxContextBytes bounds how far before a resume offset the collector
	// re-reads to recover sudo and su context.
	maxContextBytes = 1 << 20
)

// options is the parser's runtime configuration.
type options struct {
	loc        *time.Location
	year       int
	now        func() time.Time
	maxLine    int
	sudoWindow time.Duration
	privileged map[string]bool
	// hostname is used for lines that carry no host.
	hostname string
	instance string
	problems collectors.ProblemReporter
}

// parsed is one finished event and the offsets of its first and last line.
type parsed struct {
	ev          event.Event
	first, last int64
}

// batchFunc receives the events one flush produced, in source order, and
// the offset where reading would resume with none of them pending.
type batchFunc func(evs []parsed, resume int64) error

// pending is an event still open for twin lines of the same process.
type pending struct {
	key         string
	ev          event.Event
	first, last int64
	raws        []string
}

// lineParser is the streaming auth-log parser. It is fed one line at a
// time; events are held back only while twin lines of the same process
// may still follow, and are handed to sink when a change line of another
// process arrives, or on flush (end of input, or the tailer's idle timer).
// It is not safe for concurrent use.
type lineParser struct {
	opts options
	tp   timeParser
	file string
	// gen counts the files a tailer moved through; context from an older
	// file is not replayed on resume.
	gen    int
	lineNo int64
	// lineKnown: reading started at the file's start, so lineNo is the
	// line number in the file.
	lineKnown bool
	sink      batchFunc

	pend []*pending
	// spare holds flushed pendings for reuse: most lines make one.
	spare    []*pending
	procHost string
	procTool tool
	procPID  string
	procLast time.Time
	lastTime time.Time

	sudo     [sudoRing]sudoEntry
	sudoNext int
	su       map[string]*suSession

	// Events that start before suppressBefore, or whose id is in skip,
	// were emitted before a restart and are dropped.
	suppressBefore int64
	skip           map[string]bool

	batch []parsed
}

func newLineParser(opts options, file string, sink batchFunc) *lineParser {
	p := &lineParser{opts: opts, file: file, sink: sink, su: map[string]*suSession{}, lineKnown: true}
	p.tp = timeParser{loc: opts.loc, year: opts.year, now: opts.now}
	return p
}

// line parses one line (without its newline) that starts at off.
func (p *lineParser) line(b []byte, off int64) error {
	p.lineNo++
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	if len(b) == 0 {
		return nil
	}
	var h header
	switch parseHeader(b, &h) {
	case headerBad:
		p.problem(off, "not a syslog line in a known layout", b)
		return nil
	case headerNoTag:
		return nil
	}
	tl := lookupTool(h.prog)
	switch tl {
	case toolNone:
		return nil
	case toolSudo:
		p.sudoLine(&h, b, off)
		return nil
	case toolSu:
		p.suLine(&h, b, off)
		return nil
	}
	var f fragment
	switch parseChange(tl, h.msg, &f) {
	case msgIgnore:
		return nil
	case msgMalformed:
		p.problem(off, "unreadable "+tl.String()+" message", b)
		return nil
	}
	t, ok := p.tp.parse(&h)
	if !ok {
		p.problem(off, "bad timestamp", b)
		return nil
	}
	return p.change(&h, tl, &f, t, b, off)
}

// change adds one change line's fragment to the pending events.
func (p *lineParser) change(h *header, tl tool, f *fragment, t time.Time, line []byte, off int64) error {
	host := string(h.host)
	if host == "" {
		host = p.opts.hostname
	}
	pid := string(h.pid)
	if len(p.pend) > 0 && (p.procHost != host || p.procTool != tl || p.procPID != pid ||
		t.Sub(p.procLast) > mergeWindow || p.procLast.Sub(t) > mergeWindow || len(p.pend) >= maxPending) {
		if err := p.flush(off); err != nil {
			return err
		}
	}
	p.procHost, p.procTool, p.procPID, p.procLast = host, tl, pid, t
	if t.After(p.lastTime) {
		p.lastTime = t
	}
	raw := redactLine(string(line), false)
	for _, q := range p.pend {
		if q.key == f.key {
			q.merge(f, raw, off)
			return nil
		}
	}
	q := p.newPending(f.key, off)
	att := p.resolveActor(host, tl, pid, t, f)
	q.ev = p.build(host, tl, pid, t, f, att, off)
	if att.raw != "" {
		// The sudo or su line that names the actor is evidence too.
		q.raws = append(q.raws, att.raw)
	}
	q.raws = append(q.raws, raw)
	p.pend = append(p.pend, q)
	return nil
}

// build makes the event for the first fragment of a change.
func (p *lineParser) build(host string, tl tool, pid string, t time.Time, f *fragment, att attribution, off int64) event.Event {
	ev := event.Event{
		ID:           event.NewID("authlog", host, t.UTC().Truncate(time.Second).Format(time.RFC3339), tl.String(), pid, f.key),
		Time:         t,
		ObservedTime: p.opts.now(),
		Action:       f.action,
		Outcome:      f.outcome,
		Actor:        att.actor,
		Origin:       event.Origin{System: "linux", Host: host, Program: tl.String(), TTY: att.tty},
		Changes:      f.changes,
		Source:       event.Source{Collector: "authlog", Instance: p.opts.instance, File: p.file, Offset: event.Int64(off)},
	}
	if ev.Outcome == "" {
		ev.Outcome = event.OutcomeSuccess
	}
	if ev.Origin.TTY == "" {
		ev.Origin.TTY = f.tty
	}
	if n, err := strconv.Atoi(pid); err == nil && n > 0 {
		ev.Origin.PID = n
	}
	if f.user != "" {
		ev.Target.User = &event.User{Name: f.user, UID: f.uid}
	}
	if f.group != "" {
		ev.Target.Group = &event.Group{Name: f.group, GID: f.gid}
	}
	if f.passwdChangedBy && att.args != nil {
		refinePasswd(&ev, att.args)
	}
	// A password set by someone else than its owner is a reset.
	if ev.Action == event.PasswordChange && ev.Outcome == event.OutcomeSuccess {
		who := ev.Actor.OnBehalfOf
		if who == "" {
			who = ev.Actor.Name
		}
		if tl == toolChpasswd || tl == toolNewusers || (who != "" && who != f.user) {
			ev.Action = event.PasswordReset
		}
	}
	if f.group != "" && p.opts.privileged[f.group] {
		ev.Target.Privileges = []string{"group:" + f.group}
		switch ev.Action {
		case event.GroupMemberAdd:
			ev.Action = event.PrivilegeGrant
		case event.GroupMemberRemove:
			ev.Action = event.PrivilegeRevoke
		default:
			ev.Severity = event.SeverityHigh
		}
	}
	return ev
}

// refinePasswd turns passwd's "password for 'u' changed by 'root'", which
// reads the same for -l, -u, -d, -e and the aging options, into the
// specific change when the sudo command line shows the option.
func refinePasswd(ev *event.Event, args []string) {
	for _, a := range args {
		switch a {
		case "-l", "--lock":
			ev.Action, ev.Changes = event.UserLock, nil
		case "-u", "--unlock":
			ev.Action, ev.Changes = event.UserUnlock, nil
		case "-d", "--delete":
			ev.Changes = []event.Change{{Field: "password", Old: event.Redacted}}
		case "-e", "--expire":
			ev.Changes = []event.Change{{Field: "password_expiry", New: "expired"}}
		case "-n", "--mindays", "-x", "--maxdays", "-w", "--warndays", "-i", "--inactive":
			ev.Changes = []event.Change{{Field: "password_aging"}}
		default:
			continue
		}
		return
	}
}

func (q *pending) merge(f *fragment, raw string, off int64) {
	q.raws = append(q.raws, raw)
	q.last = off
	if u := q.ev.Target.User; u != nil && u.UID == nil && f.uid != nil {
		u.UID = f.uid
	}
	if g := q.ev.Target.Group; g != nil && g.GID == nil && f.gid != nil {
		g.GID = f.gid
	}
	if q.ev.Origin.TTY == "" {
		q.ev.Origin.TTY = f.tty
	}
next:
	for _, c := range f.changes {
		for _, have := range q.ev.Changes {
			if have.Field == c.Field {
				continue next
			}
		}
		q.ev.Changes = append(q.ev.Changes, c)
	}
}

// newPending returns a cleared pending for a new event, reusing a flushed
// one. Nothing emitted shares memory with it: flush copies the event and
// joins the raw lines into a new string.
func (p *lineParser) newPending(key string, off int64) *pending {
	n := len(p.spare)
	if n == 0 {
		return &pending{key: key, first: off, last: off}
	}
	q := p.spare[n-1]
	p.spare[n-1] = nil
	p.spare = p.spare[:n-1]
	*q = pending{key: key, first: off, last: off, raws: q.raws[:0]}
	return q
}

// flush hands every pending event to the sink; resume is where reading
// continues with nothing pending.
func (p *lineParser) flush(resume int64) error {
	if len(p.pend) == 0 {
		return nil
	}
	out := p.batch[:0]
	for _, q := range p.pend {
		if q.first < p.suppressBefore || p.skip[q.ev.ID] {
			continue
		}
		ev := q.ev
		ev.Raw = strings.Join(q.raws, "\n")
		ev.Complete()
		if err := event.Validate(&ev); err != nil {
			p.report(fmt.Sprintf("%s:offset %d", p.file, q.first), "event fails schema validation: "+err.Error(), "")
			continue
		}
		out = append(out, parsed{ev: ev, first: q.first, last: q.last})
	}
	p.spare = append(p.spare, p.pend...)
	clear(p.pend)
	p.pend = p.pend[:0]
	p.batch = out[:0]
	if len(out) == 0 {
		return nil
	}
	return p.sink(out, resume)
}

// contextStart returns where to re-read from, at most maxContextBytes
// before resume, so that the sudo and su lines still relevant to changes
// after resume are seen again.
func (p *lineParser) contextStart(resume int64) int64 {
	start := resume
	horizon := p.lastTime.Add(-10 * p.opts.sudoWindow)
	for i := range p.sudo {
		e := &p.sudo[i]
		if e.used && e.gen == p.gen && e.off < start && !e.t.Before(horizon) {
			start = e.off
		}
	}
	for _, s := range p.su {
		if s.gen == p.gen && s.off < start {
			start = s.off
		}
	}
	if start < resume-maxContextBytes {
		start = resume - maxContextBytes
	}
	if start < 0 {
		start = 0
	}
	return start
}

// problem reports an unreadable line, unless it lies before the resume
// point (it was reported before the restart).
func (p *lineParser) problem(off int64, reason string, line []byte) {
	if off < p.suppressBefore {
		return
	}
	sample := line
	if len(sample) > 120 {
		sample = sample[:120]
	}
	where := fmt.Sprintf("%s:%d", p.file, p.lineNo)
	if !p.lineKnown {
		where = fmt.Sprintf("%s:+%d", p.file, p.lineNo)
	}
	p.report(where, fmt.Sprintf("%s (byte offset %d)", reason, off), redactLine(strings.ToValidUTF8(string(sample), "\uFFFD"), true))
}

func (p *lineParser) report(where, reason, sample string) {
	if p.opts.problems != nil {
		p.opts.problems.Report(collectors.Problem{Where: where, Reason: reason, Sample: sample})
	}
}

// Parser is the stateless auth-log parser behind `provtrail parse
// --collector authlog`: each Parse call reads one stream from its start.
type Parser struct {
	opts options
}

var _ collectors.Parser = (*Parser)(nil)

// Parse reads r to its end and emits one record per change. Records carry
// a Position with the offset to resume from (see position).
func (ps *Parser) Parse(ctx context.Context, r io.Reader, name string, out collectors.Emitter) error {
	lp := newLineParser(ps.opts, name, nil)
	lp.sink = func(evs []parsed, resume int64) error {
		recs := make([]collectors.Record, len(evs))
		for i, fp := range recordPositions(evs, resume, filePos{FilePos: tail.FilePos{Path: name}}, func(o int64) int64 { return o }) {
			recs[i] = collectors.Record{Event: evs[i].ev, Position: tail.Encode([]filePos{fp})}
		}
		return out.Emit(ctx, recs...)
	}
	lr := tail.NewLineReader(r, 0, ps.opts.maxLine)
	lr.TooLong = func(off int64, prefix []byte) {
		lp.lineNo++
		lp.problem(off, fmt.Sprintf("line longer than %d bytes; skipped", ps.opts.maxLine), prefix)
	}
	for n := 0; ; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, off, err := lr.Next()
		if err == tail.ErrNoLine {
			if line, off := lr.Partial(); line != nil {
				if err := lp.line(line, off); err != nil {
					return err
				}
			}
			return lp.flush(lr.Consumed())
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if err := lp.line(line, off); err != nil {
			return err
		}
	}
}
