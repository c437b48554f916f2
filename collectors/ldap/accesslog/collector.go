package accesslog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/conn"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldif"
	"github.com/provtrail/provtrail/collectors/ldap/internal/norm"
)

// Collector tails one server's cn=accesslog.
type Collector struct {
	set  collectors.Settings
	cfg  *Config
	opts conn.Options
	norm *norm.Normaliser
	log  *slog.Logger
	now  func() time.Time

	// MinBackoff and MaxBackoff bound reconnect delays.
	MinBackoff, MaxBackoff time.Duration
}

// New returns a collector for cfg.
func New(set collectors.Settings, cfg *Config) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, fmt.Errorf("ldap_accesslog %q: %s", set.Name, diags.Error())
	}
	n, err := norm.New(normConfig(set, cfg, conn.Server(cfg.URL)))
	if err != nil {
		return nil, fmt.Errorf("ldap_accesslog %q: %w", set.Name, err)
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{set: set, cfg: cfg, opts: cfg.Common.Options(), norm: n, now: time.Now,
		log:        log.With("collector", Type, "name", set.Name, "server", conn.Server(cfg.URL)),
		MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}, nil
}

// errNoSync says the log database does not offer RFC 4533 sync.
var errNoSync = errors.New("server refuses the sync request on the log")

// Run tails the log from start until ctx is done: a refresh-and-persist
// sync search, or polling by entryCSN when the server refuses sync, with
// reconnects (exponential backoff) resuming from the last emitted entry.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	pos, err := decodePosition(start)
	if err != nil {
		c.problem(collectors.Problem{Where: "position", Reason: err.Error() + "; starting from the beginning of the log"})
	}
	st := &runState{pos: pos, gaps: map[string]string{}}
	bo := conn.Backoff{Min: c.MinBackoff, Max: c.MaxBackoff}
	for {
		began := time.Now()
		err := c.session(ctx, st, out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errNoSync) {
			c.log.Info("log has no syncprov: polling by entryCSN", "interval", c.cfg.PollInterval)
			st.poll = true
			continue
		}
		c.log.Warn("ldap session ended; reconnecting", "err", err)
		if time.Since(began) > time.Minute || st.progress {
			bo.Reset()
		}
		st.progress = false
		if err := bo.Wait(ctx); err != nil {
			return err
		}
	}
}

type runState struct {
	pos      position
	poll     bool
	progress bool
	// fullRefresh asks the next sync search for a refresh without cookie.
	fullRefresh bool
	// gaps holds, per server id, the newest minCSN already reported.
	gaps map[string]string
}

func (c *Collector) problem(p collectors.Problem) {
	report(c.set, p)
}

func (c *Collector) session(ctx context.Context, st *runState, out collectors.Emitter) error {
	l, err := conn.Dial(ctx, c.opts)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := c.checkGap(l, st); err != nil {
		return err
	}
	if st.poll {
		return c.pollLoop(ctx, l, st, out)
	}
	return c.syncLoop(ctx, l, st, out)
}

// checkGap compares the resume point with the newest CSN the server has
// purged (minCSN on the log's base entry): an older resume point means
// entries were deleted before we read them.
func (c *Collector) checkGap(l *ldap.Conn, st *runState) error {
	// Checked on every connect once anything was read: a long outage can
	// outlast logpurge's age as well as a stopped agent can.
	if len(st.pos.CSN) == 0 {
		return nil
	}
	res, err := l.Search(ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, 0, false, "(objectClass=*)", []string{"minCSN"}, nil))
	if err != nil {
		return fmt.Errorf("read minCSN of %s: %w", c.cfg.BaseDN, err)
	}
	if len(res.Entries) == 0 {
		return nil
	}
	for _, purged := range res.Entries[0].GetAttributeValues("minCSN") {
		sid := csnSID(purged)
		have, ok := st.pos.CSN[sid]
		if !ok || have >= purged || st.gaps[sid] >= purged {
			continue
		}
		st.gaps[sid] = purged
		msg := fmt.Sprintf("gap: entries up to CSN %s were purged from %s before they were read (resume point %s); changes in between are lost",
			purged, c.cfg.BaseDN, have)
		c.log.Error("accesslog gap", "purged_up_to", purged, "resume_point", have)
		c.problem(collectors.Problem{Where: conn.Server(c.cfg.URL) + "/" + c.cfg.BaseDN, Reason: msg})
	}
	return nil
}

func (c *Collector) searchRequest(filter string) *ldap.SearchRequest {
	return ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		filter, logAttrs, nil)
}

func (c *Collector) syncLoop(ctx context.Context, l *ldap.Conn, st *runState, out collectors.Emitter) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cookie := st.pos.syncCookie()
	if st.fullRefresh {
		cookie = nil
	}
	resp := l.Syncrepl(sctx, c.searchRequest("(objectClass=auditWriteObject)"), 64,
		ldap.SyncRequestModeRefreshAndPersist, cookie, false)
	for resp.Next() {
		var newCookie []byte
		gone := false
		for _, ctl := range resp.Controls() {
			switch v := ctl.(type) {
			case *ldap.ControlSyncState:
				newCookie = v.Cookie
				// Log entries are only ever added; a delete or present
				// notice (not sent for purges, but possible after a
				// refresh) carries no change to report.
				gone = v.State == ldap.SyncStateDelete || v.State == ldap.SyncStatePresent
			case *ldap.ControlSyncInfo:
				switch {
				case v.NewCookie != nil:
					newCookie = v.NewCookie.Cookie
				case v.RefreshDelete != nil:
					newCookie = v.RefreshDelete.Cookie
				case v.RefreshPresent != nil:
					newCookie = v.RefreshPresent.Cookie
				}
			case *ldap.ControlSyncDone:
				newCookie = v.Cookie
			}
		}
		if len(newCookie) > 0 {
			st.fullRefresh = false
		}
		if e := resp.Entry(); e != nil && !gone {
			if err := c.handle(ctx, fromLDAP(e), st, newCookie, out); err != nil {
				return err
			}
		} else if len(newCookie) > 0 && st.pos.Part == 0 {
			// A cookie with no entry (end of refresh): it is carried by
			// the next record.
			st.pos.Cookie = newCookie
		}
	}
	err := resp.Err()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case conn.IsCode(err, ldap.LDAPResultUnavailableCriticalExtension, ldap.LDAPResultUnwillingToPerform):
		return errNoSync
	case conn.IsCode(err, ldap.LDAPResultSyncRefreshRequired):
		// The server cannot resume from the cookie (the log was purged
		// past it): refresh in full; the stored CSNs skip what was
		// already emitted.
		st.pos.Cookie = nil
		st.fullRefresh = true
		return fmt.Errorf("sync refresh required: %w", err)
	case err == nil:
		return errors.New("sync search ended")
	}
	return fmt.Errorf("sync search on %s: %w", c.cfg.BaseDN, err)
}

// handle emits one log entry's events, each with the position after it.
func (c *Collector) handle(ctx context.Context, rec *ldif.Record, st *runState, cookie []byte, out collectors.Emitter) error {
	csn := rec.First("entryCSN")
	done := st.pos.emitted(csn)
	if done < 0 {
		return nil
	}
	evs, err := eventsOf(c.norm, rec, "", c.now())
	if err != nil {
		c.problem(collectors.Problem{Where: conn.Server(c.cfg.URL) + "/" + rec.DN, Reason: err.Error()})
		evs = nil
	}
	prevCookie := st.pos.Cookie
	finish := func(p *position) {
		if csn != "" {
			if p.CSN == nil {
				p.CSN = map[string]string{}
			}
			p.CSN[csnSID(csn)] = csn
		}
		p.Last, p.Part = "", 0
		if len(cookie) > 0 {
			p.Cookie = cookie
		}
	}
	if done >= len(evs) {
		finish(&st.pos)
		return nil
	}
	recs := make([]collectors.Record, 0, len(evs)-done)
	for i := done; i < len(evs); i++ {
		p := st.pos.clone()
		if i == len(evs)-1 {
			finish(&p)
		} else {
			// Resuming here must emit the rest of this entry: keep the
			// cookie from before it.
			if p.CSN == nil {
				p.CSN = map[string]string{}
			}
			if csn != "" {
				p.CSN[csnSID(csn)] = csn
			}
			p.Last, p.Part, p.Cookie = csn, i+1, prevCookie
		}
		recs = append(recs, collectors.Record{Event: evs[i], Position: p.encode()})
	}
	if err := out.Emit(ctx, recs...); err != nil {
		return err
	}
	finish(&st.pos)
	st.progress = true
	return nil
}

// pollLoop reads new log entries by entryCSN every PollInterval, a page at
// a time, until an error or ctx is done.
func (c *Collector) pollLoop(ctx context.Context, l *ldap.Conn, st *runState, out collectors.Emitter) error {
	for {
		filter := "(objectClass=auditWriteObject)"
		if o := st.pos.oldest(); o != "" {
			filter = "(&(objectClass=auditWriteObject)(entryCSN>=" + ldap.EscapeFilter(o) + "))"
		}
		if err := c.pollOnce(ctx, l, st, filter, out); err != nil {
			return err
		}
		if err := conn.Sleep(ctx, c.cfg.PollInterval); err != nil {
			return err
		}
	}
}

func (c *Collector) pollOnce(ctx context.Context, l *ldap.Conn, st *runState, filter string, out collectors.Emitter) error {
	req := c.searchRequest(filter)
	paging := ldap.NewControlPaging(uint32(c.cfg.PageSize))
	req.Controls = []ldap.Control{paging}
	for {
		res, err := l.Search(req)
		if err != nil {
			return fmt.Errorf("poll %s: %w", c.cfg.BaseDN, err)
		}
		// Within a page, commit order is entryCSN order.
		slices.SortStableFunc(res.Entries, func(a, b *ldap.Entry) int {
			return strings.Compare(a.GetAttributeValue("entryCSN"), b.GetAttributeValue("entryCSN"))
		})
		for _, e := range res.Entries {
			if err := c.handle(ctx, fromLDAP(e), st, nil, out); err != nil {
				return err
			}
		}
		pc, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if pc == nil || len(pc.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(pc.Cookie)
	}
}
