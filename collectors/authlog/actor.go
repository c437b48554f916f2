package authlog

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/provtrail/provtrail/event"
)

// The shadow-utils lines do not say who ran the tool. The parser keeps the
// recent sudo command lines that ran one of the account tools and the open
// su sessions, and attributes a change to the human behind them.

// sudoRing is how many recent sudo command lines are remembered.
const sudoRing = 32

// maxSuSessions bounds the open su sessions remembered.
const maxSuSessions = 64

// maxSuAge is how long an su session whose close line never came (lost to
// rotation, a crash) may still name an actor.
const maxSuAge = 12 * time.Hour

// sudoEntry is one "sudo: USER : TTY=... ; USER=root ; COMMAND=/usr/sbin/useradd ..." line.
type sudoEntry struct {
	used  bool
	gen   int
	off   int64
	host  string
	t     time.Time
	user  string
	runas string
	tty   string
	tool  tool
	args  []string
	raw   string
	// wrapper: the command is Debian's adduser/deluser/addgroup/delgroup,
	// which runs several tools (useradd, groupadd, chfn, gpasswd, ...),
	// each its own process. It can match all of them while they keep
	// coming; lastUse is when it last did.
	wrapper bool
	lastUse time.Time
	// The process (program and pid) this command line was matched to.
	bound     bool
	boundTool tool
	boundPID  string
}

// suSession is an open "su[pid]: (to X) Y on TTY" session.
type suSession struct {
	gen  int
	off  int64
	host string
	pid  string
	t    time.Time
	to   string
	from string
	tty  string
	// via is the sudo user when root's su was itself run through sudo
	// ("sudo su -").
	via string
	raw string
}

// sudoLine remembers a sudo command line that ran an account tool or su.
// Everything else sudo logs (PAM sessions, other commands, refusals) is
// dropped after a few byte comparisons.
func (p *lineParser) sudoLine(h *header, line []byte, off int64) {
	msg := h.msg
	ci := bytes.Index(msg, []byte("COMMAND="))
	if ci < 0 {
		return
	}
	cmd := msg[ci+len("COMMAND="):]
	end := bytes.IndexByte(cmd, ' ')
	if end < 0 {
		end = len(cmd)
	}
	tl := lookupTool(cmd[:end])
	wrapper := false
	if tl == toolNone {
		wrapper = isWrapper(cmd[:end])
		if !wrapper {
			return
		}
	}
	if tl == toolSudo {
		return
	}
	colon := bytes.Index(msg, []byte(" : "))
	if colon <= 0 || colon > ci {
		return
	}
	e := sudoEntry{used: true, gen: p.gen, off: off, host: string(h.host), tool: tl, wrapper: wrapper}
	e.user = strings.TrimSpace(string(msg[:colon]))
	for _, part := range strings.Split(string(msg[colon+3:ci]), " ; ") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || !isUpperKey(k) {
			// A reason ("user NOT in sudoers", "3 incorrect password
			// attempts", "command not allowed"): sudo refused.
			return
		}
		switch k {
		case "TTY":
			e.tty = strings.TrimPrefix(v, "/dev/")
		case "USER":
			e.runas = v
		}
	}
	if e.user == "" {
		return
	}
	t, ok := p.tp.parse(h)
	if !ok {
		p.problem(off, "bad timestamp", line)
		return
	}
	e.t, e.lastUse = t, t
	e.args = strings.Fields(string(cmd[end:]))
	e.raw = redactLine(string(line), true)
	if e.runas == "" {
		e.runas = "root"
	}
	p.sudo[p.sudoNext] = e
	p.sudoNext = (p.sudoNext + 1) % sudoRing
}

func isUpperKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if (k[i] < 'A' || k[i] > 'Z') && k[i] != '_' {
			return false
		}
	}
	return true
}

// suLine tracks su sessions: "(to X) Y on TTY", the PAM session lines, and
// "session closed".
func (p *lineParser) suLine(h *header, line []byte, off int64) {
	msg := bytes.TrimRight(h.msg, "\r\n ")
	host, pid := string(h.host), string(h.pid)
	key := host + "\x00" + pid
	if rest, ok := cutPrefix(msg, "(to "); ok {
		// (to X) Y on TTY
		i := bytes.Index(rest, []byte(") "))
		if i <= 0 || pid == "" {
			return
		}
		to := string(rest[:i])
		from, tty, _ := strings.Cut(string(rest[i+2:]), " on ")
		t, ok := p.tp.parse(h)
		if !ok {
			p.problem(off, "bad timestamp", line)
			return
		}
		s := &suSession{gen: p.gen, off: off, host: host, pid: pid, t: t, to: to, from: from, tty: strings.TrimPrefix(tty, "/dev/"), raw: redactLine(string(line), false)}
		if from == "root" {
			// "sudo su -": the human is the sudo user.
			if e := p.findSudo(host, toolSu, pid, t, nil); e != nil {
				s.via = e.user
			}
		}
		p.openSu(key, s)
		return
	}
	if rest, ok := cutPrefix(msg, "pam_unix(su"); ok {
		if i := bytes.Index(rest, []byte(":session): session closed for user ")); i >= 0 {
			delete(p.su, key)
		}
	}
}

func (p *lineParser) openSu(key string, s *suSession) {
	if len(p.su) >= maxSuSessions {
		var oldest string
		for k, v := range p.su {
			if oldest == "" || v.t.Before(p.su[oldest].t) {
				oldest = k
			}
		}
		delete(p.su, oldest)
	}
	p.su[key] = s
}

// findSudo returns the sudo command line that ran tl as process pid on
// host shortly before t, binding it to that process. A line already bound
// to the same process matches again (a tool logs several changes); an
// unbound one matches when its arguments name the change's target (names
// nil: no target check).
func (p *lineParser) findSudo(host string, tl tool, pid string, t time.Time, names []string) *sudoEntry {
	for k := 1; k <= sudoRing; k++ {
		e := &p.sudo[(p.sudoNext-k+sudoRing)%sudoRing]
		if !e.used || e.host != host {
			continue
		}
		if e.wrapper {
			// adduser may wait for a typed password or GECOS between
			// the tools it runs: the window slides with each match.
			if age := t.Sub(e.lastUse); names != nil && age >= -time.Second && age <= p.opts.sudoWindow && argsMatch(e, names) {
				e.lastUse = t
				return e
			}
			continue
		}
		if e.tool != tl {
			continue
		}
		age := t.Sub(e.t)
		if e.bound {
			if e.boundTool == tl && e.boundPID == pid && age >= -time.Second && age <= 10*p.opts.sudoWindow {
				return e
			}
			continue
		}
		if age < -time.Second || age > p.opts.sudoWindow {
			continue
		}
		if names != nil && !argsMatch(e, names) {
			continue
		}
		e.bound, e.boundTool, e.boundPID = true, tl, pid
		return e
	}
	return nil
}

// isWrapper reports whether a sudo command is one of Debian's Perl
// wrappers around the shadow tools (they log nothing themselves).
func isWrapper(p []byte) bool {
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	switch string(p) {
	case "adduser", "deluser", "addgroup", "delgroup":
		return true
	}
	return false
}

// argsMatch reports whether the sudo command's arguments name the change's
// target. Tools that read their targets from stdin (chpasswd, newusers)
// and self-service tools run without a user argument (passwd, chfn, chsh:
// the target is sudo's run-as user) match without one.
func argsMatch(e *sudoEntry, names []string) bool {
	positional := false
	for _, a := range e.args {
		if !strings.HasPrefix(a, "-") {
			positional = true
		}
		for _, n := range names {
			if n == "" {
				continue
			}
			if a == n || (strings.Contains(a, ",") && slices.Contains(strings.Split(a, ","), n)) {
				return true
			}
		}
	}
	if positional {
		return false
	}
	switch e.tool {
	case toolChpasswd, toolNewusers:
		return true
	case toolPasswd, toolChfn, toolChsh:
		return slices.Contains(names, e.runas)
	}
	return false
}

// suFor returns the su session a change by tool tl on host belongs to: the
// only open session on the host, when it is root's (any tool) or the
// target's own (self-service tools).
func (p *lineParser) suFor(host string, tl tool, f *fragment, t time.Time) *suSession {
	var found *suSession
	for _, s := range p.su {
		if s.host != host || s.t.After(t) || t.Sub(s.t) > maxSuAge {
			continue
		}
		if found != nil {
			return nil // ambiguous: never guess between sessions
		}
		found = s
	}
	if found == nil {
		return nil
	}
	if found.to == "root" {
		return found
	}
	switch tl {
	case toolPasswd, toolChfn, toolChsh:
		if f.user == found.to {
			return found
		}
	}
	return nil
}

// attribution is the actor of a change and the evidence for it.
type attribution struct {
	actor event.Actor
	tty   string
	raw   string
	args  []string
}

// resolveActor finds who made the change in f, in order: a sudo command
// line that ran the tool on this target, the user the tool names itself
// ("by root"), an su session, or unknown.
func (p *lineParser) resolveActor(host string, tl tool, pid string, t time.Time, f *fragment) attribution {
	if e := p.findSudo(host, tl, pid, t, f.names); e != nil {
		return attribution{
			actor: event.Actor{Name: e.user, Type: event.ActorHuman, Auth: "sudo", OnBehalfOf: e.runas},
			tty:   e.tty, raw: e.raw, args: e.args,
		}
	}
	if f.by != "" || f.byUID != nil {
		a := event.Actor{Name: f.by, UID: f.byUID, Type: event.ActorHuman}
		if f.by == "root" {
			a.UID, a.Type = event.Int64(0), event.ActorUnknown
		}
		return attribution{actor: a}
	}
	if s := p.suFor(host, tl, f, t); s != nil {
		a := event.Actor{Name: s.from, Type: event.ActorHuman, Auth: "su", OnBehalfOf: s.to, Session: "su[" + s.pid + "]"}
		if s.via != "" {
			a.Name, a.Auth = s.via, "sudo+su"
		}
		if a.Name == "" {
			a.Type = event.ActorUnknown
		}
		return attribution{actor: a, tty: s.tty, raw: s.raw}
	}
	return attribution{actor: event.Actor{Type: event.ActorUnknown}}
}

// redactLine removes password material from a line kept as evidence: the
// argument of -p/--password (useradd, usermod, groupadd, groupmod), and
// anything shaped like a crypt(3) hash.
func redactLine(s string, command bool) string {
	if !strings.Contains(s, "$") && (!command || !strings.Contains(s, " -")) {
		return s
	}
	toks := strings.Split(s, " ")
	redactNext := false
	for i, t := range toks {
		switch {
		case redactNext && t != "":
			toks[i], redactNext = event.Redacted, false
		case command && (t == "-p" || t == "--password"):
			redactNext = true
		case command && strings.HasPrefix(t, "--password="):
			toks[i] = "--password=" + event.Redacted
		case command && len(t) > 2 && strings.HasPrefix(t, "-p") && !strings.HasPrefix(t, "--"):
			toks[i] = "-p" + event.Redacted
		case strings.Count(t, "$") >= 3 || strings.Contains(t, "$6$") || strings.Contains(t, "$y$"):
			toks[i] = event.Redacted
		}
	}
	return strings.Join(toks, " ")
}
