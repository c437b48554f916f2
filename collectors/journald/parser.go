package journald

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/auditd"
	"github.com/provtrail/provtrail/collectors/authlog"
	"github.com/provtrail/provtrail/event"
)

// tools are the SYSLOG_IDENTIFIERs whose messages the auth-log grammar
// reads (changes, and sudo/su lines that name actors).
var tools = map[string]bool{
	"useradd": true, "usermod": true, "userdel": true, "groupadd": true, "groupmod": true,
	"groupdel": true, "gpasswd": true, "passwd": true, "chpasswd": true, "newusers": true,
	"chage": true, "chfn": true, "chsh": true, "sudo": true, "su": true,
}

// processor maps runs of journal entries to records. Syslog messages of
// the shadow-utils tools are rendered as RFC 3339 syslog lines and read by
// the authlog parser (so the message grammar lives in one place); audit
// records (_TRANSPORT=audit) are rendered as audit.log lines and read by
// the auditd parser. The trusted fields journald adds (_AUDIT_LOGINUID,
// _AUDIT_SESSION, _PID, _COMM) then fill in the actor and origin.
type processor struct {
	set      collectors.Settings
	syslog   *authlog.Parser
	audit    *auditd.Parser
	problems collectors.ProblemReporter
	now      func() time.Time
}

func newProcessor(set collectors.Settings, privileged []string) (*processor, error) {
	acfg := authlog.DefaultConfig()
	acfg.Paths = []string{"/dev/stdin"}            // the parser never opens it
	acfg.Timezone, acfg.Location = "UTC", time.UTC // lines carry their offset anyway
	acfg.PrivilegedGroups = privileged
	aset := set
	aset.Type = authlog.NewFactory().Type
	sp, err := authlog.NewParser(aset, acfg)
	if err != nil {
		return nil, fmt.Errorf("journald: syslog parser: %w", err)
	}
	dcfg := auditd.DefaultConfig()
	dcfg.PrivilegedGroups = privileged
	p := &processor{set: set, syslog: sp, audit: auditd.NewParser(set, dcfg), problems: set.Problems, now: time.Now}
	if p.problems == nil {
		p.problems = &collectors.ProblemCounter{}
	}
	return p, nil
}

// found is an event and the index of the first entry it came from.
type found struct {
	ev    event.Event
	first int
}

// run maps entries (in journal order) to records, in journal order of their
// first entry. A record's Position is the cursor of the entry just before
// the next record's first entry (the last entry for the last record), so
// resuming after it never skips an entry of a later record.
//
// prev is the Position before the first entry (the previous run's last
// cursor): the Position of an event that shares its first entry with the
// next one.
func (p *processor) run(ctx context.Context, entries []entry, prev collectors.Position) ([]collectors.Record, error) {
	var out []found

	// Syslog messages, through the authlog parser.
	var buf bytes.Buffer
	var offsets []int64
	var lineEntry []int
	for i, e := range entries {
		ident := e["SYSLOG_IDENTIFIER"]
		if e["_TRANSPORT"] == "audit" || !tools[ident] {
			continue
		}
		t, ok := e.time()
		if !ok {
			p.problem(e, "entry has no timestamp")
			continue
		}
		msg := strings.TrimRight(e["MESSAGE"], "\n")
		if strings.ContainsAny(msg, "\n\r") {
			// A syslog message is one line; keep the first.
			msg, _, _ = strings.Cut(strings.ReplaceAll(msg, "\r", "\n"), "\n")
		}
		host := e["_HOSTNAME"]
		if host == "" {
			host = p.set.Hostname
		}
		if host == "" {
			host = "-"
		}
		offsets = append(offsets, int64(buf.Len()))
		lineEntry = append(lineEntry, i)
		buf.WriteString(t.Format("2006-01-02T15:04:05.000000Z07:00"))
		buf.WriteByte(' ')
		buf.WriteString(host)
		buf.WriteByte(' ')
		buf.WriteString(ident)
		if pid := e["SYSLOG_PID"]; pid != "" {
			buf.WriteString("[" + pid + "]")
		}
		buf.WriteString(": ")
		buf.WriteString(msg)
		buf.WriteByte('\n')
	}
	if buf.Len() > 0 {
		err := p.syslog.Parse(ctx, bytes.NewReader(buf.Bytes()), "journal", collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
			for _, r := range recs {
				first := 0
				if r.Event.Source.Offset != nil {
					k := sort.Search(len(offsets), func(i int) bool { return offsets[i] > *r.Event.Source.Offset }) - 1
					if k >= 0 {
						first = lineEntry[k]
					}
				}
				out = append(out, found{ev: r.Event, first: first})
			}
			return nil
		}))
		if err != nil {
			return nil, err
		}
	}

	// Audit records, through the auditd parser.
	st := p.audit.NewStream("journal", func(ev event.Event, mark collectors.Position) error {
		i, _ := strconv.Atoi(string(mark))
		out = append(out, found{ev: ev, first: i})
		return nil
	})
	for i, e := range entries {
		if e["_TRANSPORT"] != "audit" {
			continue
		}
		line, ok := auditLine(e)
		if !ok {
			p.problem(e, "audit entry without _AUDIT_TYPE_NAME, _AUDIT_ID or timestamp")
			continue
		}
		if err := st.Record(line, collectors.Position(strconv.Itoa(i))); err != nil {
			return nil, err
		}
	}
	if err := st.Flush(); err != nil {
		return nil, err
	}

	sort.SliceStable(out, func(a, b int) bool { return out[a].first < out[b].first })
	recs := make([]collectors.Record, len(out))
	for k, f := range out {
		last := len(entries) - 1
		if k+1 < len(out) {
			last = out[k+1].first - 1
		}
		pos := prev
		if last >= 0 {
			pos = collectors.Position(entries[last]["__CURSOR"])
		}
		ev := f.ev
		p.enrich(&ev, entries[f.first])
		recs[k] = collectors.Record{Event: ev, Position: pos}
	}
	return recs, nil
}

// auditLine renders an audit-transport entry as an audit.log line.
// journald stores MESSAGE="ADD_USER pid=... msg='...'" and the serial in
// _AUDIT_ID.
func auditLine(e entry) ([]byte, bool) {
	typ, id := e["_AUDIT_TYPE_NAME"], e["_AUDIT_ID"]
	t, ok := e.time()
	if typ == "" || id == "" || !ok {
		return nil, false
	}
	msg := e["MESSAGE"]
	if rest, ok := strings.CutPrefix(msg, typ+" "); ok {
		msg = rest
	}
	ms := t.UnixMilli()
	return fmt.Appendf(nil, "type=%s msg=audit(%d.%03d:%s): %s", typ, ms/1000, ms%1000, id, msg), true
}

// enrich makes the event journald's: its own source, a stable id from the
// cursor, and the trusted fields journald recorded about the sender.
func (p *processor) enrich(ev *event.Event, e entry) {
	cursor := e["__CURSOR"]
	ev.ID = event.NewID(Type, cursor, string(ev.Action), targetKey(ev))
	ev.Source = event.Source{Collector: Type, Instance: p.set.Name, Cursor: cursor, EventID: ev.Source.EventID}
	if ev.Origin.Host == "" {
		ev.Origin.Host = e["_HOSTNAME"]
	}
	if pid, err := strconv.Atoi(e["_PID"]); err == nil && ev.Origin.PID == 0 {
		ev.Origin.PID = pid
	}
	if ev.Origin.Program == "" {
		ev.Origin.Program = e["_COMM"]
	}
	// _AUDIT_LOGINUID is the login user, kept across sudo and su: the best
	// actor a log has (audit's auid, read by the kernel, not the sender).
	if luid := e["_AUDIT_LOGINUID"]; luid != "" && luid != "4294967295" {
		if n, err := strconv.ParseInt(luid, 10, 64); err == nil {
			if ev.Actor.UID == nil || ev.Actor.Type == event.ActorUnknown || ev.Actor.Type == "" {
				ev.Actor.UID = event.Int64(n)
			}
			if ev.Actor.Type == event.ActorUnknown || ev.Actor.Type == "" || ev.Actor.Type == event.ActorSystem {
				ev.Actor.Type = event.ActorHuman
			}
			if s := e["_AUDIT_SESSION"]; s != "" && s != "4294967295" && ev.Actor.Session == "" {
				ev.Actor.Session = s
			}
		}
	}
}

func targetKey(ev *event.Event) string {
	var parts []string
	if u := ev.Target.User; u != nil {
		parts = append(parts, "u:"+u.Name)
	}
	if g := ev.Target.Group; g != nil {
		parts = append(parts, "g:"+g.Name)
	}
	parts = append(parts, ev.Target.Privileges...)
	return strings.Join(parts, "|")
}

func (p *processor) problem(e entry, reason string) {
	p.problems.Report(collectors.Problem{Where: "cursor " + e["__CURSOR"], Reason: reason})
}

// Parser reads recorded `journalctl -o json` output (NDJSON): debugging,
// backfill and the collector's own tests.
type Parser struct {
	p *processor
}

var _ collectors.Parser = (*Parser)(nil)

// parseChunk is how many entries the Parser maps at once: sudo context and
// twin lines are tracked within a chunk.
const parseChunk = 4096

// Parse reads r to its end and emits one record per change.
func (ps *Parser) Parse(ctx context.Context, r io.Reader, name string, out collectors.Emitter) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var chunk []entry
	var prev collectors.Position
	lineNo := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		recs, err := ps.p.run(ctx, chunk, prev)
		prev = collectors.Position(chunk[len(chunk)-1]["__CURSOR"])
		chunk = chunk[:0]
		if err != nil || len(recs) == 0 {
			return err
		}
		return out.Emit(ctx, recs...)
	}
	for {
		line, err := readLine(br, MaxEntryBytes)
		if len(line) > 0 {
			lineNo++
			if errors.Is(err, errTooLong) {
				ps.p.problems.Report(collectors.Problem{Where: fmt.Sprintf("%s:%d", name, lineNo), Reason: "entry longer than the limit; skipped"})
			} else if t := bytes.TrimSpace(line); len(t) > 0 {
				e, derr := decodeEntry(t)
				if derr != nil {
					ps.p.problems.Report(collectors.Problem{Where: fmt.Sprintf("%s:%d", name, lineNo), Reason: "not a journal JSON entry: " + derr.Error()})
				} else {
					chunk = append(chunk, e)
					if len(chunk) >= parseChunk {
						if err := flush(); err != nil {
							return err
						}
					}
				}
			}
		}
		if err == io.EOF {
			return flush()
		}
		if err != nil && !errors.Is(err, errTooLong) {
			return fmt.Errorf("journald: read %s: %w", name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

var errTooLong = errors.New("line too long")

// readLine returns the next line (its newline included) truncated to max;
// a longer line is consumed whole and reported with errTooLong.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
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
			return buf, errTooLong
		}
		return buf, err
	}
}
