// Package correlate merges the evidence several host collectors give for
// one real change into one event, so that the trail has one entry per
// change: a `sudo useradd` shows up as an auth.log line (authlog), an audit
// record (auditd), a journal entry (journald) and a passwd diff (accounts).
//
// # Matching
//
// Two events are the same change when they are on the same host, their
// times are at most Window apart, and they share a change key: the kind of
// change (user created, member added, password changed, ...) and the
// identity of its target (user name or UID, group name or GID, privilege).
// Membership of a privileged group is one kind whether a collector called
// it group.member.add or privilege.grant; a user.modify has one kind per
// attribute it changed (the diff's "shell and comment" matches the auth
// line's "shell" and the audit record's "comment"), with the collectors'
// names for one attribute unified (gecos/comment, the aging fields, the
// expiry fields). Events about the same target also match when one of
// them only knows the change generically and both come from one process,
// or one is the diff (which knows no process): shadow 4.13's audit record
// for usermod -L says "updating passwd", passwd -l's auth line "password
// for 'x' changed by 'root'", the diff "locked".
//
// # Merging
//
// The merged event keeps every record's Raw (one per line, in arrival
// order), the best actor (audit's auid or journald's login uid, over
// sudo's user, over any named actor, over unknown), the union of target
// ids and changes, the stronger action (privilege.grant over
// group.member.add), the highest severity and the earliest time. Its id is
// the id of its best source (auditd, journald, authlog, accounts, in that
// order), so a re-read merges to the same id.
//
// # Delivery
//
// An event of a correlated collector is held at most Hold after it
// arrived, then released with whatever evidence came. Evidence arriving
// after its event was released (within Window) is emitted on its own,
// except an accounts diff, which is suppressed: a log already covered the
// change. Other collectors' events pass straight through. At most MaxHeld
// events are held; beyond that the oldest is released early.
//
// Positions: a collector's record Position may be committed only when
// that record and every earlier record of the same collector instance
// were released. Each Output carries the positions that became safe with
// it.
//
// # Wiring
//
// A Correlator is not safe for concurrent use: the pipeline's batching
// loop owns it. Where the loop takes a collector's records, it calls
// Add(now, key, recs) instead of batching them directly, and batches each
// returned Output: the event (if any) as a line, then every entry of
// Positions as that collector's position. It arms a timer for
// NextDeadline and calls Expire when it fires, and calls Flush before
// sealing on shutdown.
package correlate

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// Defaults.
const (
	DefaultWindow  = 5 * time.Second
	DefaultHold    = 2 * time.Second
	DefaultMaxHeld = 10000
)

// DefaultCollectors are the collector types whose events are correlated.
var DefaultCollectors = []string{"authlog", "auditd", "journald", "accounts"}

// Config configures a Correlator.
type Config struct {
	// Window is how far apart (in event time) two records of one change
	// may be.
	Window time.Duration
	// Hold is how long (in wall time) an event waits for more evidence.
	Hold time.Duration
	// MaxHeld bounds the events held at once.
	MaxHeld int
	// Collectors are the collector types to correlate; others pass through.
	Collectors []string
}

// Output is one event to batch (nil for positions only) and the positions
// that are safe to commit once it is durable, by collector instance key.
type Output struct {
	Event     *event.Event
	Positions map[string]collectors.Position
}

// Correlator holds events briefly to merge their evidence.
type Correlator struct {
	cfg   Config
	types map[string]bool

	held []*held // arrival order
	// byKey indexes held events by change key.
	byKey map[string][]*held
	// released remembers change keys of released events for Window, to
	// recognise late evidence.
	released map[string]time.Time

	// queues hold each collector instance's records in arrival order until
	// released, so positions are committed in order.
	queues map[string][]*pending
}

type held struct {
	ev       event.Event
	keys     []string
	arrived  time.Time
	raws     []string
	best     int // source rank of ev.ID's source
	members  []*pending
	released bool
}

type pending struct {
	pos  collectors.Position
	done bool
}

// New returns a Correlator; zero fields of cfg take the defaults.
func New(cfg Config) *Correlator {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Hold <= 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = DefaultMaxHeld
	}
	if cfg.Collectors == nil {
		cfg.Collectors = DefaultCollectors
	}
	c := &Correlator{cfg: cfg, types: map[string]bool{}, byKey: map[string][]*held{}, released: map[string]time.Time{}, queues: map[string][]*pending{}}
	for _, t := range cfg.Collectors {
		c.types[t] = true
	}
	return c
}

// Add takes records of one collector instance (key "TYPE/NAME", in the
// collector's order) at wall time now, and returns what can be released.
func (c *Correlator) Add(now time.Time, key string, recs []collectors.Record) []Output {
	var out []Output
	typ, _, _ := strings.Cut(key, "/")
	for _, r := range recs {
		p := &pending{pos: r.Position}
		c.queues[key] = append(c.queues[key], p)
		ev := r.Event
		if !c.types[typ] {
			p.done = true
			out = c.release(out, &ev)
			continue
		}
		keys := changeKeys(&ev)
		if h := c.match(&ev, keys); h != nil {
			c.merge(h, &ev, keys)
			h.members = append(h.members, p)
			continue
		}
		if c.late(&ev, keys, now) {
			p.done = true
			if ev.Source.Collector == "accounts" {
				out = c.release(out, nil) // covered by a log event already sent
			} else {
				out = c.release(out, &ev)
			}
			continue
		}
		h := &held{ev: ev, keys: keys, arrived: now, raws: rawLines(ev.Raw), best: sourceRank(&ev), members: []*pending{p}}
		c.held = append(c.held, h)
		for _, k := range keys {
			c.byKey[k] = append(c.byKey[k], h)
		}
		if len(c.held) > c.cfg.MaxHeld {
			out = c.releaseHeld(out, c.held[0], now)
		}
	}
	return out
}

// Expire releases the events held longer than Hold at now.
func (c *Correlator) Expire(now time.Time) []Output {
	var out []Output
	for len(c.held) > 0 && now.Sub(c.held[0].arrived) >= c.cfg.Hold {
		out = c.releaseHeld(out, c.held[0], now)
	}
	for k, t := range c.released {
		if now.Sub(t) > c.cfg.Window+c.cfg.Hold {
			delete(c.released, k)
		}
	}
	return out
}

// NextDeadline returns when Expire has something to release.
func (c *Correlator) NextDeadline() (time.Time, bool) {
	if len(c.held) == 0 {
		return time.Time{}, false
	}
	return c.held[0].arrived.Add(c.cfg.Hold), true
}

// Flush releases every held event (shutdown, or a batch being sealed).
func (c *Correlator) Flush(now time.Time) []Output {
	var out []Output
	for len(c.held) > 0 {
		out = c.releaseHeld(out, c.held[0], now)
	}
	return out
}

// Held returns how many events are held.
func (c *Correlator) Held() int { return len(c.held) }

func (c *Correlator) releaseHeld(out []Output, h *held, now time.Time) []Output {
	i := slices.Index(c.held, h)
	c.held = slices.Delete(c.held, i, i+1)
	for _, k := range h.keys {
		list := c.byKey[k]
		if j := slices.Index(list, h); j >= 0 {
			list = slices.Delete(list, j, j+1)
		}
		if len(list) == 0 {
			delete(c.byKey, k)
		} else {
			c.byKey[k] = list
		}
		c.released[k] = now
	}
	for _, p := range h.members {
		p.done = true
	}
	h.released = true
	ev := h.ev
	ev.Raw = strings.Join(h.raws, "\n")
	return c.release(out, &ev)
}

// release appends ev (nil: positions only) with the positions that became
// safe.
func (c *Correlator) release(out []Output, ev *event.Event) []Output {
	o := Output{Event: ev}
	for key, q := range c.queues {
		n := 0
		for n < len(q) && q[n].done {
			n++
		}
		if n == 0 {
			continue
		}
		if pos := q[n-1].pos; pos != nil {
			if o.Positions == nil {
				o.Positions = map[string]collectors.Position{}
			}
			o.Positions[key] = pos
		}
		if n == len(q) {
			delete(c.queues, key)
		} else {
			c.queues[key] = q[n:]
		}
	}
	if o.Event == nil && o.Positions == nil {
		return out
	}
	return append(out, o)
}

// match finds the held event ev belongs to.
func (c *Correlator) match(ev *event.Event, keys []string) *held {
	for _, k := range keys {
		for _, h := range c.byKey[k] {
			if c.near(h, ev) {
				return h
			}
		}
	}
	// Same process (or the diff), same target, one side generic.
	for _, h := range c.held {
		// The diff knows no process: it matches any pid.
		samePID := h.ev.Origin.PID == ev.Origin.PID || h.ev.Origin.PID == 0 || ev.Origin.PID == 0
		if samePID && sameHost(h.ev.Origin.Host, ev.Origin.Host) && c.near(h, ev) &&
			generic(&h.ev) != generic(ev) && sameTarget(&h.ev, ev) {
			return h
		}
	}
	return nil
}

func (c *Correlator) near(h *held, ev *event.Event) bool {
	d := h.ev.Time.Sub(ev.Time)
	return d <= c.cfg.Window && d >= -c.cfg.Window
}

func (c *Correlator) late(ev *event.Event, keys []string, now time.Time) bool {
	for _, k := range keys {
		if t, ok := c.released[k]; ok && now.Sub(t) <= c.cfg.Window+c.cfg.Hold {
			return true
		}
	}
	return false
}

// genericFields name a change without saying which: shadow 4.13's audit
// "updating passwd" (usermod -L or -U), passwd's "password for 'x'
// changed by 'y'" (lock, unlock, expire, delete or aging).
var genericFields = map[string]bool{"locked": true, "password_settings": true}

// fieldClass groups the user.modify fields different collectors use for
// one attribute.
var fieldClass = map[string]string{
	"comment": "gecos", "gecos": "gecos",
	"max_age": "aging", "min_age": "aging", "warn": "aging", "inactive": "aging", "password_aging": "aging",
	"expire": "expiry", "password_expiry": "expiry", "last_change": "expiry",
}

// generic reports an event that names a change without its kind: a
// user.modify or group.modify with no changes or only generic ones.
func generic(ev *event.Event) bool {
	if ev.Action != event.UserModify && ev.Action != event.GroupModify {
		return false
	}
	for _, ch := range ev.Changes {
		if !genericFields[ch.Field] {
			return false
		}
	}
	return true
}

func sameTarget(a, b *event.Event) bool {
	ua, ub := a.Target.User, b.Target.User
	if ua != nil && ub != nil {
		return ua.Name != "" && ua.Name == ub.Name || ua.UID != nil && ub.UID != nil && *ua.UID == *ub.UID
	}
	ga, gb := a.Target.Group, b.Target.Group
	if ga != nil && gb != nil {
		return ga.Name != "" && ga.Name == gb.Name || ga.GID != nil && gb.GID != nil && *ga.GID == *gb.GID
	}
	return false
}

func sameHost(a, b string) bool { return shortHost(a) == shortHost(b) || a == "" || b == "" }

func shortHost(h string) string {
	h, _, _ = strings.Cut(strings.ToLower(h), ".")
	return h
}

// kinds maps an action (and target, and for user.modify the fields) to
// the kinds of change it records. A user.modify has one kind per
// attribute it changed, so the diff's "shell and comment" matches the
// auth line's "shell" and the audit record's "comment".
func kinds(ev *event.Event) []string {
	switch ev.Action {
	case event.PrivilegeGrant, event.PrivilegeRevoke:
		sign := "+"
		if ev.Action == event.PrivilegeRevoke {
			sign = "-"
		}
		if ev.Target.Group != nil && ev.Target.User != nil {
			return []string{"member" + sign} // membership of a privileged group
		}
		return []string{"privilege" + sign}
	case event.GroupMemberAdd:
		return []string{"member+"}
	case event.GroupMemberRemove:
		return []string{"member-"}
	case event.UserModify:
		var out []string
		for _, ch := range ev.Changes {
			if genericFields[ch.Field] {
				continue
			}
			k := "user.modify:" + ch.Field
			if c, ok := fieldClass[ch.Field]; ok {
				k = "user.modify:" + c
			}
			if ch.Field == "password" {
				k = string(event.PasswordChange) // passwd -d: the password removed
			}
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
		if len(out) == 0 {
			return []string{string(ev.Action)}
		}
		return out
	}
	return []string{string(ev.Action)}
}

// changeKeys returns the keys under which ev can match: host, kind and
// each identity of its target.
func changeKeys(ev *event.Event) []string {
	var keys []string
	for _, k := range kinds(ev) {
		keys = append(keys, kindKeys(ev, shortHost(ev.Origin.Host)+"|"+k+"|")...)
	}
	return keys
}

func kindKeys(ev *event.Event, prefix string) []string {
	var users, groups []string
	if u := ev.Target.User; u != nil {
		if u.Name != "" {
			users = append(users, "u="+u.Name)
		}
		if u.UID != nil {
			users = append(users, "uid="+strconv.FormatInt(*u.UID, 10))
		}
	}
	if g := ev.Target.Group; g != nil {
		if g.Name != "" {
			groups = append(groups, "g="+g.Name)
		}
		if g.GID != nil {
			groups = append(groups, "gid="+strconv.FormatInt(*g.GID, 10))
		}
	}
	var keys []string
	switch {
	case len(users) > 0 && len(groups) > 0:
		for _, u := range users {
			for _, g := range groups {
				keys = append(keys, prefix+u+"|"+g)
			}
		}
	case len(users) > 0:
		for _, u := range users {
			keys = append(keys, prefix+u)
		}
	case len(groups) > 0:
		for _, g := range groups {
			keys = append(keys, prefix+g)
		}
	}
	if len(users) == 0 || len(groups) == 0 {
		for _, p := range ev.Target.Privileges {
			keys = append(keys, prefix+"p="+p)
		}
	}
	return keys
}

func rawLines(raw string) []string {
	if raw == "" {
		return nil
	}
	return []string{raw}
}

// sourceRank orders sources by how much they know: audit records carry
// the login user and result, journald trusted fields, auth lines the
// semantics, the diff only the state.
func sourceRank(ev *event.Event) int {
	switch ev.Source.Collector {
	case "auditd":
		return 4
	case "journald":
		return 3
	case "authlog":
		return 2
	case "accounts":
		return 1
	}
	return 0
}

// actorRank orders actors: the login uid (audit auid, journald
// _AUDIT_LOGINUID) over sudo's user over any named actor over unknown.
func actorRank(ev *event.Event) int {
	a := ev.Actor
	switch {
	case a.UID != nil && a.Type == event.ActorHuman && (ev.Source.Collector == "auditd" || ev.Source.Collector == "journald"):
		return 3
	case a.Auth == "sudo":
		return 2
	case a.Name != "" || a.UID != nil:
		return 1
	}
	return 0
}

var severityOrder = map[event.Severity]int{event.SeverityInfo: 0, event.SeverityLow: 1, event.SeverityMedium: 2, event.SeverityHigh: 3, event.SeverityCritical: 4}

// merge folds ev into h.
func (c *Correlator) merge(h *held, ev *event.Event, keys []string) {
	m := &h.ev
	if ev.Raw != "" && !slices.Contains(h.raws, ev.Raw) {
		h.raws = append(h.raws, ev.Raw)
	}
	for _, k := range keys {
		if !slices.Contains(h.keys, k) {
			h.keys = append(h.keys, k)
			c.byKey[k] = append(c.byKey[k], h)
		}
	}
	// Actor.
	if ra, rm := actorRank(ev), actorRank(m); ra > rm {
		better := ev.Actor
		if better.Name == "" && m.Actor.Name != "" && (m.Actor.UID == nil || better.UID != nil && *m.Actor.UID == *better.UID) {
			better.Name = m.Actor.Name
		}
		m.Actor = better
	} else if m.Actor.Name == "" && ev.Actor.Name != "" && ra > 0 && (ev.Actor.UID == nil || m.Actor.UID != nil && *ev.Actor.UID == *m.Actor.UID) {
		m.Actor.Name = ev.Actor.Name
	}
	// Action: a privilege over a plain membership; a named kind over a
	// generic modify.
	if (m.Action == event.GroupMemberAdd && ev.Action == event.PrivilegeGrant) ||
		(m.Action == event.GroupMemberRemove && ev.Action == event.PrivilegeRevoke) ||
		(generic(m) && !generic(ev)) {
		m.Action = ev.Action
		m.OCSF = ev.OCSF
	}
	for _, p := range ev.Target.Privileges {
		if !slices.Contains(m.Target.Privileges, p) {
			m.Target.Privileges = append(m.Target.Privileges, p)
		}
	}
	// Target ids.
	if ev.Target.User != nil {
		if m.Target.User == nil {
			u := *ev.Target.User
			m.Target.User = &u
		} else {
			u := *m.Target.User
			if u.Name == "" {
				u.Name = ev.Target.User.Name
			}
			if u.UID == nil {
				u.UID = ev.Target.User.UID
			}
			m.Target.User = &u
		}
	}
	if ev.Target.Group != nil {
		if m.Target.Group == nil {
			g := *ev.Target.Group
			m.Target.Group = &g
		} else {
			g := *m.Target.Group
			if g.Name == "" {
				g.Name = ev.Target.Group.Name
			}
			if g.GID == nil {
				g.GID = ev.Target.Group.GID
			}
			m.Target.Group = &g
		}
	}
	// Changes: union by field, filling unknown values.
	m.Changes = slices.Clone(m.Changes)
	for _, ch := range ev.Changes {
		i := slices.IndexFunc(m.Changes, func(x event.Change) bool { return x.Field == ch.Field })
		if i < 0 {
			m.Changes = append(m.Changes, ch)
			continue
		}
		if m.Changes[i].Old == "" {
			m.Changes[i].Old = ch.Old
		}
		if m.Changes[i].New == "" {
			m.Changes[i].New = ch.New
		}
	}
	// Origin: the best source's (the tool's own tty, not sudo's), with
	// what it lacks filled in.
	fill := ev.Origin
	if sourceRank(ev) > h.best {
		fill, m.Origin = m.Origin, ev.Origin
	}
	o := &m.Origin
	if o.PID == 0 {
		o.PID = fill.PID
	}
	if o.Program == "" {
		o.Program = fill.Program
	}
	if o.TTY == "" {
		o.TTY = fill.TTY
	}
	if o.IP == "" {
		o.IP = fill.IP
	}
	if o.Host == "" {
		o.Host = fill.Host
	}
	if m.Outcome == event.OutcomeUnknown && ev.Outcome != "" {
		m.Outcome = ev.Outcome
	}
	if severityOrder[ev.Severity] > severityOrder[m.Severity] {
		m.Severity = ev.Severity
	}
	if !ev.Time.IsZero() && ev.Time.Before(m.Time) {
		m.Time = ev.Time
	}
	// Id and source: the best source's, so a re-read merges to one id.
	if r := sourceRank(ev); r > h.best || r == h.best && ev.ID < m.ID {
		h.best = r
		m.ID = ev.ID
		m.Source = ev.Source
	}
}
