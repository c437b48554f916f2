package auditd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// twinWindow bounds how far apart two records of one process may be to
// merge as twins of one change (groupadd writes three ADD_GROUP records
// within milliseconds).
const twinWindow = 2 * time.Second

// finishedEvent is one finished event and the mark of its last line.
type finishedEvent struct {
	ev   event.Event
	mark collectors.Position
	// next is the byte offset after the last line, for the Parser's
	// positions.
	next int64
}

// stream is the stateful audit.log reader shared by the Parser and the
// Collector. Lines go in with the Position just after each (its mark);
// events come out through emit in file order. Records of one audit event
// (same msg=audit(...) stamp) are grouped; twin records of one process for
// one change are merged. It is not safe for concurrent use.
type stream struct {
	m        mapper
	file     string
	instance string
	problems collectors.ProblemReporter
	now      func() time.Time
	emit     func([]finishedEvent) error

	lineNo int64
	// group is the audit event being read: records sharing one stamp.
	group     []*Record
	groupOff  []int64
	groupMark collectors.Position
	groupNext int64
	// pend is the mapped event held for twins.
	pend     *pending
	finished []finishedEvent
}

type pending struct {
	ev   event.Event
	key  string
	pid  int
	last time.Time
	raws []string
	mark collectors.Position
	next int64
}

func (s *stream) problem(off int64, reason string, line []byte) {
	if s.problems == nil {
		return
	}
	smp := string(line)
	if len(smp) > 120 {
		smp = smp[:120]
	}
	s.problems.Report(collectors.Problem{
		Where:  fmt.Sprintf("%s:%d", s.file, s.lineNo),
		Reason: fmt.Sprintf("%s (byte offset %d)", reason, off),
		Sample: redact(strings.ToValidUTF8(smp, "\uFFFD")),
	})
}

// line reads one line (without newline) starting at off; next is the
// offset after it and mark its Position (nil for the Parser, which derives
// positions from next).
func (s *stream) line(b []byte, off, next int64, mark collectors.Position) error {
	s.lineNo++
	b = trimNL(b)
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	r, err := parseRecord(b)
	if err != nil {
		s.problem(off, "not an audit record: "+err.Error(), b)
		return nil
	}
	if len(s.group) > 0 && s.group[0].ID != r.ID {
		s.closeGroup()
	}
	if r.Type == "EOE" {
		s.groupMark, s.groupNext = mark, next
		s.closeGroup()
		return s.deliver()
	}
	s.group = append(s.group, r)
	s.groupOff = append(s.groupOff, off)
	s.groupMark, s.groupNext = mark, next
	if !isKernelType(r.Type) {
		// User-space records are whole events: nothing follows them.
		s.closeGroup()
	}
	return s.deliver()
}

// isKernelType reports record types the kernel writes as parts of a
// multi-record event (closed by EOE or by the next stamp).
func isKernelType(t string) bool {
	switch t {
	case "SYSCALL", "PATH", "CWD", "PROCTITLE", "EXECVE", "SOCKADDR", "BPRM_FCAPS", "CAPSET", "MMAP", "IPC", "OBJ_PID", "NETFILTER_CFG":
		return true
	}
	return false
}

// closeGroup maps the finished audit event.
func (s *stream) closeGroup() {
	for i, r := range s.group {
		mp, ok := s.m.mapRecord(r)
		if !ok {
			continue
		}
		s.add(r, s.groupOff[i], mp)
	}
	s.group, s.groupOff = s.group[:0], s.groupOff[:0]
}

func (s *stream) add(r *Record, off int64, mp mapped) {
	pid := mp.ev.Origin.PID
	if p := s.pend; p != nil && p.key == mp.key && p.pid == pid && r.Time.Sub(p.last) <= twinWindow && r.Time.Sub(p.last) >= 0 {
		p.raws = append(p.raws, redact(r.Raw))
		p.last = r.Time
		p.mark, p.next = s.groupMark, s.groupNext
		if p.ev.Outcome != mp.ev.Outcome {
			p.ev.Outcome = event.OutcomeUnknown
		}
		mergeChanges(&p.ev, mp.ev.Changes)
		fillTarget(&p.ev, &mp.ev)
		return
	}
	s.flushPending()
	ev := mp.ev
	ev.ID = event.NewID(Type, ev.Origin.Host, r.ID, r.Type)
	ev.Source = event.Source{Collector: Type, Instance: s.instance, File: s.file, EventID: r.ID}
	if off >= 0 {
		ev.Source.Offset = event.Int64(off)
	}
	s.pend = &pending{ev: ev, key: mp.key, pid: pid, last: r.Time, raws: []string{redact(r.Raw)}, mark: s.groupMark, next: s.groupNext}
}

func mergeChanges(ev *event.Event, cs []event.Change) {
	for _, c := range cs {
		dup := false
		for i, have := range ev.Changes {
			if have.Field == c.Field {
				dup = true
				if have.New == "" {
					ev.Changes[i].New = c.New
				}
				if have.Old == "" {
					ev.Changes[i].Old = c.Old
				}
			}
		}
		if !dup {
			ev.Changes = append(ev.Changes, c)
		}
	}
}

// fillTarget completes the held event's target with names or ids a twin
// record knows (one record names the group, the next its GID).
func fillTarget(into, from *event.Event) {
	if u, f := into.Target.User, from.Target.User; u != nil && f != nil {
		if u.Name == "" {
			u.Name = f.Name
		}
		if u.UID == nil {
			u.UID = f.UID
		}
	}
	if g, f := into.Target.Group, from.Target.Group; g != nil && f != nil {
		if g.Name == "" {
			g.Name = f.Name
		}
		if g.GID == nil {
			g.GID = f.GID
		}
	}
}

func (s *stream) flushPending() {
	p := s.pend
	if p == nil {
		return
	}
	s.pend = nil
	p.ev.Raw = strings.Join(p.raws, "\n")
	p.ev.ObservedTime = s.now()
	p.ev.Complete()
	s.finished = append(s.finished, finishedEvent{ev: p.ev, mark: p.mark, next: p.next})
}

// deliver hands finished events to emit.
func (s *stream) deliver() error {
	if len(s.finished) == 0 {
		return nil
	}
	f := s.finished
	s.finished = nil
	return s.emit(f)
}

// flush ends every open group and held event: end of input, or the
// collector found no new data for a while.
func (s *stream) flush() error {
	if len(s.group) > 0 {
		s.closeGroup()
	}
	s.flushPending()
	return s.deliver()
}

// hashRE matches crypt(3) hashes, which must never leave the host even if
// a record carried one (a usermod -p command line in a USER_CMD record).
var hashRE = regexp.MustCompile(`\$(1|2[abxy]|5|6|7|y|gy|sha1)\$[^\s'"]*`)

func redact(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	return hashRE.ReplaceAllString(s, event.Redacted)
}

// Parser is the stateless audit.log parser behind `provtrail parse`: each
// Parse call reads one stream from its start.
type Parser struct {
	privileged map[string]bool
	hostname   string
	instance   string
	problems   collectors.ProblemReporter
	now        func() time.Time
}

var _ collectors.Parser = (*Parser)(nil)

// filePosition is the Position of the Parser's records: the byte offset
// after the record's last line.
type filePosition struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
}

// Parse reads r to its end and emits one record per account change.
func (p *Parser) Parse(ctx context.Context, r io.Reader, name string, emitter collectors.Emitter) error {
	s := p.newStream(name, func(outs []finishedEvent) error {
		recs := make([]collectors.Record, len(outs))
		for i, o := range outs {
			pos, _ := json.Marshal(filePosition{File: name, Offset: o.next})
			recs[i] = collectors.Record{Event: o.ev, Position: pos}
		}
		return emitter.Emit(ctx, recs...)
	})
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	for n := 0; ; n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, n, err := readLine(br, MaxLineLength)
		if n > 0 {
			next := off + int64(n)
			if errors.Is(err, errTooLong) {
				s.lineNo++
				s.problem(off, fmt.Sprintf("record longer than %d bytes; skipped", MaxLineLength), line[:min(len(line), 120)])
			} else if lerr := s.line(line, off, next, nil); lerr != nil {
				return lerr
			}
			off = next
		}
		if err == io.EOF {
			return s.flush()
		}
		if err != nil && !errors.Is(err, errTooLong) {
			return fmt.Errorf("auditd: read %s: %w", name, err)
		}
	}
}

func (p *Parser) newStream(name string, emit func([]finishedEvent) error) *stream {
	now := p.now
	if now == nil {
		now = time.Now
	}
	return &stream{
		m:        mapper{privileged: p.privileged, hostname: p.hostname},
		file:     name,
		instance: p.instance,
		problems: p.problems,
		now:      func() time.Time { return now().UTC() },
		emit:     emit,
	}
}

var errTooLong = errors.New("line too long")

// readLine returns the next line including its newline (none at EOF) and
// the number of bytes consumed. A line longer than max is consumed whole
// and returned truncated to max with errTooLong, so one bad record never
// stops the stream and memory stays bounded.
func readLine(br *bufio.Reader, max int) ([]byte, int, error) {
	var buf []byte
	total := 0
	for {
		chunk, err := br.ReadSlice('\n')
		total += len(chunk)
		if len(buf) < max {
			buf = append(buf, chunk[:min(len(chunk), max-len(buf))]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if total > max {
			return buf, total, errTooLong
		}
		return buf, total, err
	}
}

// Stream reads audit records one at a time for collectors that receive
// them in another envelope (journald's audit transport). Each record goes
// in with its carrier's Position; finished events come out with the mark
// of their last record. It is not safe for concurrent use.
type Stream struct{ s *stream }

// NewStream returns a Stream named name (for Source.File and problems)
// whose events go to emit.
func (p *Parser) NewStream(name string, emit func(ev event.Event, mark collectors.Position) error) *Stream {
	st := p.newStream(name, func(evs []finishedEvent) error {
		for _, e := range evs {
			if err := emit(e.ev, e.mark); err != nil {
				return err
			}
		}
		return nil
	})
	return &Stream{s: st}
}

// Record reads one audit.log-format line: "type=T msg=audit(S.MS:N): ...".
func (st *Stream) Record(line []byte, mark collectors.Position) error {
	return st.s.line(line, -1, 0, mark)
}

// Flush emits every held event.
func (st *Stream) Flush() error { return st.s.flush() }
