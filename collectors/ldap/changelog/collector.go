package changelog

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/conn"
	"github.com/provtrail/provtrail/collectors/ldap/internal/norm"
)

// position is the last changeNumber whose events were all emitted.
type position struct {
	V      int   `json:"v"`
	Number int64 `json:"change_number"`
}

func decodePosition(p collectors.Position) (position, bool, error) {
	if len(p) == 0 {
		return position{V: 1}, false, nil
	}
	var pos position
	if err := json.Unmarshal(p, &pos); err != nil {
		return position{V: 1}, false, fmt.Errorf("ldap_changelog position: %w", err)
	}
	if pos.V != 1 || pos.Number < 0 {
		return position{V: 1}, false, fmt.Errorf("ldap_changelog position %s is not version 1", p)
	}
	return pos, true, nil
}

func (p position) encode() collectors.Position {
	b, _ := json.Marshal(p)
	return b
}

// Collector polls one server's retro changelog.
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
		return nil, fmt.Errorf("ldap_changelog %q: %s", set.Name, diags.Error())
	}
	n, err := norm.New(normConfig(set, cfg, conn.Server(cfg.URL)))
	if err != nil {
		return nil, fmt.Errorf("ldap_changelog %q: %w", set.Name, err)
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{set: set, cfg: cfg, opts: cfg.Common.Options(), norm: n, now: time.Now,
		log:        log.With("collector", Type, "name", set.Name, "server", conn.Server(cfg.URL)),
		MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}, nil
}

type runState struct {
	// pos is the last fully emitted change; cursor the last change read
	// (it runs ahead over changes that yield no event and over holes).
	pos      position
	cursor   int64
	resumed  bool
	psearch  bool
	progress bool
	reported map[string]bool
	// dir is what the changes read so far say about entries; warm says
	// the changes before the resume point were read into it.
	dir  *directory
	warm bool
}

// Run polls from start until ctx is done, reconnecting with backoff.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	pos, resumed, err := decodePosition(start)
	if err != nil {
		report(c.set, collectors.Problem{Where: "position", Reason: err.Error() + "; starting from the first change"})
	}
	st := &runState{pos: pos, cursor: pos.Number, resumed: resumed, psearch: c.cfg.PersistentSearch, reported: map[string]bool{}, dir: newDirectory()}
	bo := conn.Backoff{Min: c.MinBackoff, Max: c.MaxBackoff}
	for {
		began := time.Now()
		err := c.session(ctx, st, out)
		if ctx.Err() != nil {
			return ctx.Err()
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

func (c *Collector) where() string { return conn.Server(c.cfg.URL) + "/" + c.cfg.BaseDN }

func (c *Collector) session(ctx context.Context, st *runState, out collectors.Emitter) error {
	l, err := conn.Dial(ctx, c.opts)
	if err != nil {
		return err
	}
	defer l.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wake := make(chan struct{}, 1)
	psErr := make(chan error, 1)
	if st.psearch {
		go c.persistentSearch(sctx, l, wake, psErr)
	}
	for {
		more, err := c.pollOnce(ctx, l, st, out)
		if err != nil {
			return err
		}
		if more {
			continue
		}
		t := time.NewTimer(c.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
		case <-t.C:
		case err := <-psErr:
			t.Stop()
			if conn.IsCode(err, ldap.LDAPResultUnavailableCriticalExtension, ldap.LDAPResultUnwillingToPerform) {
				c.log.Info("server does not offer persistent search on the changelog; polling only", "err", err)
				st.psearch = false
				continue
			}
			return fmt.Errorf("persistent search: %w", err)
		}
		t.Stop()
	}
}

// rootDSE reads the changelog bounds the server advertises.
func (c *Collector) rootDSE(l *ldap.Conn) (first, last int64, ok bool, err error) {
	res, err := l.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"firstchangenumber", "lastchangenumber"}, nil))
	if err != nil {
		return 0, 0, false, fmt.Errorf("read root DSE: %w", err)
	}
	if len(res.Entries) == 0 {
		return 0, 0, false, nil
	}
	e := res.Entries[0]
	fs, ls := e.GetEqualFoldAttributeValue("firstchangenumber"), e.GetEqualFoldAttributeValue("lastchangenumber")
	if fs == "" || ls == "" {
		return 0, 0, false, nil
	}
	first, err1 := strconv.ParseInt(fs, 10, 64)
	last, err2 := strconv.ParseInt(ls, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false, fmt.Errorf("root DSE changelog bounds %q..%q are not numbers", fs, ls)
	}
	return first, last, true, nil
}

// window bounds one poll, so a huge backlog is read in slices.
func (c *Collector) window() int64 { return int64(max(4*c.cfg.PageSize, 1000)) }

// pollOnce reads the next window of changes. more says another window is
// waiting.
func (c *Collector) pollOnce(ctx context.Context, l *ldap.Conn, st *runState, out collectors.Emitter) (bool, error) {
	first, last, bounds, err := c.rootDSE(l)
	if err != nil {
		return false, err
	}
	if bounds && last < st.cursor {
		// Either the changelog was recreated (numbers restarted), or the
		// root DSE is wrong: 389-DS 2.3.1 on LMDB (upstream issue 6915)
		// reports lastchangenumber 0 or 1 while its entries go on. The
		// entry at the resume point tells which.
		still, err := c.exists(l, st.cursor)
		if err != nil {
			return false, err
		}
		if still {
			key := fmt.Sprintf("stale:%d", last)
			if !st.reported[key] {
				st.reported[key] = true
				msg := fmt.Sprintf("root DSE lastchangenumber %d is below change %d, which is still in the changelog: the server's bounds are wrong (389-DS issue 6915?); reading by changeNumber without them", last, st.cursor)
				c.log.Error("changelog bounds are stale", "last", last, "resume_point", st.cursor)
				report(c.set, collectors.Problem{Where: c.where(), Reason: msg})
			}
			bounds = false
		}
	}
	if bounds {
		switch {
		case last < st.cursor:
			// The changelog was recreated: numbers restarted.
			key := fmt.Sprintf("reset:%d:%d", st.cursor, last)
			if !st.reported[key] {
				st.reported[key] = true
				msg := fmt.Sprintf("changelog reset: lastchangenumber %d is below the resume point %d; reading again from %d", last, st.cursor, first)
				c.log.Error("changelog reset", "last", last, "resume_point", st.cursor)
				report(c.set, collectors.Problem{Where: c.where(), Reason: msg})
			}
			st.cursor = max(first-1, 0)
			// What was known came from another changelog.
			st.dir = newDirectory()
		case first > st.cursor+1 && (st.resumed || st.cursor > 0):
			key := fmt.Sprintf("gap:%d:%d", st.cursor, first)
			if !st.reported[key] {
				st.reported[key] = true
				msg := fmt.Sprintf("gap: changes %d to %d were trimmed from the changelog before they were read", st.cursor+1, first-1)
				c.log.Error("changelog gap", "from", st.cursor+1, "to", first-1)
				report(c.set, collectors.Problem{Where: c.where(), Reason: msg})
			}
			st.cursor = first - 1
			// The lost changes may have touched any entry.
			st.dir = newDirectory()
		}
	}
	// The window is read even when the bounds say there is nothing new:
	// an empty indexed search costs what a probe would, and bounds that
	// are wrong but not below the resume point cannot be told otherwise.
	if !st.warm {
		if err := c.warmUp(l, st, max(first, 1)); err != nil {
			return false, err
		}
	}
	lo, hi := st.cursor+1, st.cursor+c.window()
	list, err := c.read(l, lo, hi)
	if err != nil {
		return false, err
	}
	for _, x := range list {
		if x.n <= st.cursor {
			continue
		}
		rec := fromLDAP(x.e)
		e, evs, err := eventsOf(c.norm, st.dir, rec, "", c.now())
		if err != nil {
			report(c.set, collectors.Problem{Where: c.where() + "/" + x.e.DN, Reason: err.Error()})
		}
		if drop, warn := skip(c.cfg, e); drop {
			evs = nil
		} else if warn && !st.reported["noflag"] {
			st.reported["noflag"] = true
			c.log.Warn("skip_replicated cannot work: no isReplicated in the changelog")
			report(c.set, collectors.Problem{Where: c.where() + "/" + x.e.DN, Reason: noFlag})
		}
		if len(evs) > 0 {
			recs := make([]collectors.Record, len(evs))
			for i := range evs {
				// All events of a change carry the position after it:
				// the agent commits a change's records together.
				recs[i] = collectors.Record{Event: evs[i], Position: position{V: 1, Number: x.n}.encode()}
			}
			if err := out.Emit(ctx, recs...); err != nil {
				return false, err
			}
			st.pos.Number = x.n
			st.progress = true
		}
		st.cursor = x.n
	}
	if len(list) == 0 && bounds && last >= hi {
		// A hole as wide as the window: step over it.
		st.cursor = hi
	}
	return bounds && last > st.cursor, nil
}

type numbered struct {
	n int64
	e *ldap.Entry
}

// read returns the changes numbered lo to hi, in numeric order (servers
// return them in storage order), paged.
func (c *Collector) read(l *ldap.Conn, lo, hi int64) ([]numbered, error) {
	filter := fmt.Sprintf("(&(objectClass=changeLogEntry)(changeNumber>=%d)(changeNumber<=%d))", lo, hi)
	req := ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		filter, logAttrs, nil)
	paging := ldap.NewControlPaging(uint32(c.cfg.PageSize))
	req.Controls = []ldap.Control{paging}
	var list []numbered
	for {
		res, err := l.Search(req)
		if err != nil {
			return nil, fmt.Errorf("poll %s: %w", c.cfg.BaseDN, err)
		}
		for _, e := range res.Entries {
			n, err := strconv.ParseInt(e.GetEqualFoldAttributeValue("changeNumber"), 10, 64)
			if err != nil {
				report(c.set, collectors.Problem{Where: c.where() + "/" + e.DN, Reason: "bad changeNumber"})
				continue
			}
			list = append(list, numbered{n, e})
		}
		pc, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if pc == nil || len(pc.Cookie) == 0 {
			break
		}
		paging.SetCookie(pc.Cookie)
	}
	slices.SortFunc(list, func(a, b numbered) int { return cmp.Compare(a.n, b.n) })
	return list, nil
}

// exists reports whether change n is in the changelog.
func (c *Collector) exists(l *ldap.Conn, n int64) (bool, error) {
	req := ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 1, 0, false,
		fmt.Sprintf("(&(objectClass=changeLogEntry)(changeNumber=%d))", n), []string{"changeNumber"}, nil)
	res, err := l.Search(req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return false, fmt.Errorf("look for change %d: %w", n, err)
	}
	return res != nil && len(res.Entries) > 0, nil
}

// warmUp reads the changes still in the changelog up to the resume point
// into st.dir, without emitting anything, so that changes after it can be
// diffed against what those said (see directory). Once per Run.
func (c *Collector) warmUp(l *ldap.Conn, st *runState, first int64) error {
	for lo := first; lo <= st.cursor; {
		hi := min(lo+c.window()-1, st.cursor)
		list, err := c.read(l, lo, hi)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		for _, x := range list {
			if e, err := decode(fromLDAP(x.e)); err == nil {
				st.dir.apply(e.change)
			}
		}
		lo = hi + 1
	}
	st.warm = true
	if st.dir.Forgotten > 0 {
		c.log.Warn("changelog warm-up: entries beyond the bounds are not remembered", "forgotten", st.dir.Forgotten)
	}
	return nil
}

// persistentSearch runs a psearch (draft-ietf-ldapext-psearch) on the
// changelog and signals wake on every change notification. It ends with
// the connection or ctx.
func (c *Collector) persistentSearch(ctx context.Context, l *ldap.Conn, wake chan<- struct{}, errc chan<- error) {
	req := ldap.NewSearchRequest(c.cfg.BaseDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=changeLogEntry)", []string{"changeNumber"}, []ldap.Control{&persistentSearchControl{}})
	resp := l.SearchAsync(ctx, req, 16)
	for resp.Next() {
		if resp.Entry() != nil {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	err := resp.Err()
	if err == nil {
		err = fmt.Errorf("persistent search on %s ended", c.cfg.BaseDN)
	}
	errc <- err
}

// ControlTypePersistentSearch is the persistent search request control.
const ControlTypePersistentSearch = "2.16.840.1.113730.3.4.3"

// persistentSearchControl asks for every change type, changes only, no
// entry change notification controls. It is critical so that a server
// without psearch refuses instead of running a plain search.
type persistentSearchControl struct{}

func (*persistentSearchControl) GetControlType() string { return ControlTypePersistentSearch }

func (*persistentSearchControl) Encode() *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, ControlTypePersistentSearch, "Control Type (Persistent Search)"))
	p.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "Criticality"))
	v := ber.Encode(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, nil, "Control Value")
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PersistentSearch")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1|2|4|8), "changeTypes"))
	seq.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "changesOnly"))
	seq.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "returnECs"))
	v.AppendChild(seq)
	p.AppendChild(v)
	return p
}

func (*persistentSearchControl) String() string {
	return "Control Type: Persistent Search (" + ControlTypePersistentSearch + ") Criticality: true"
}
