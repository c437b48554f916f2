package changelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldif"
	"github.com/provtrail/provtrail/collectors/ldap/internal/norm"
	"github.com/provtrail/provtrail/event"
)

// Parser reads an LDIF export of cn=changelog (ldapsearch -LLL -b
// cn=changelog '(changeNumber>=1)') and emits its events. It keeps no
// state between calls.
type Parser struct {
	set collectors.Settings
	cfg *Config
	now func() time.Time
}

// NewParser returns a parser; cfg may be nil (default classes, no
// privileged groups).
func NewParser(set collectors.Settings, cfg *Config) (*Parser, error) {
	return &Parser{set: set, cfg: cfg, now: time.Now}, nil
}

func normConfig(set collectors.Settings, cfg *Config, server string) norm.Config {
	nc := norm.Config{Collector: Type, Instance: set.Name, System: "389ds", Server: server}
	if cfg != nil {
		nc.PrivilegedGroups = cfg.PrivilegedGroups
		nc.UserClasses = cfg.UserClasses
		nc.GroupClasses = cfg.GroupClasses
		nc.SecretAttrs = cfg.SecretAttributes
	}
	return nc
}

func report(set collectors.Settings, p collectors.Problem) {
	if set.Problems != nil {
		set.Problems.Report(p)
	}
}

// Parse reads r (named name) to its end.
func (p *Parser) Parse(ctx context.Context, r io.Reader, name string, out collectors.Emitter) error {
	n, err := norm.New(normConfig(p.set, p.cfg, name))
	if err != nil {
		return err
	}
	rd := ldif.NewReader(r)
	dir := newDirectory()
	warned := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var se *ldif.SyntaxError
		if errors.As(err, &se) {
			report(p.set, collectors.Problem{Where: fmt.Sprintf("%s:%d", name, se.Line), Reason: se.Reason, Sample: se.Sample})
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		e, evs, err := eventsOf(n, dir, rec, name, p.now())
		if err != nil {
			report(p.set, collectors.Problem{Where: fmt.Sprintf("%s:%d", name, rec.Line), Reason: err.Error(), Sample: rec.DN})
			continue
		}
		drop, warn := skip(p.cfg, e)
		if warn && !warned {
			warned = true
			report(p.set, collectors.Problem{Where: fmt.Sprintf("%s:%d", name, rec.Line), Reason: noFlag})
		}
		if drop {
			continue
		}
		if len(evs) == 0 {
			continue
		}
		recs := make([]collectors.Record, len(evs))
		for i := range evs {
			recs[i] = collectors.Record{Event: evs[i]}
		}
		if err := out.Emit(ctx, recs...); err != nil {
			return err
		}
	}
}

// skip says whether the events of e are left out: a replicated change
// when cfg says so. warn is set when skip_replicated cannot work because
// the entry does not say.
func skip(cfg *Config, e *entry) (skip, warn bool) {
	if cfg == nil || !cfg.SkipReplicated || e == nil {
		return false, false
	}
	return e.replicated, !e.flagged
}

// noFlag is the problem reported (once) when skip_replicated is set and
// the changelog does not carry isReplicated.
const noFlag = "skip_replicated is set but changelog entries carry no isReplicated: add \"nsslapd-attribute: isReplicated\" to cn=Retro Changelog Plugin,cn=plugins,cn=config; every change is emitted meanwhile"

// eventsOf decodes and normalises one changelog entry, with what dir
// (which may be nil) knows of the entry changed, and records the change
// in dir.
func eventsOf(n *norm.Normaliser, dir *directory, rec *ldif.Record, file string, observed time.Time) (*entry, []event.Event, error) {
	e, err := decode(rec)
	if err != nil {
		return e, nil, err
	}
	dir.old(e.change)
	defer dir.apply(e.change)
	num := strconv.FormatInt(e.number, 10)
	src := norm.Source{
		EventID: "changenumber=" + num,
		// Numbers restart when a changelog is recreated: the time and
		// target make the id unique across resets.
		IDParts: []string{n.Server(), num, e.time, e.target},
		Cursor:  num,
		File:    file,
		Raw:     raw(rec, e, n.Secrets()),
	}
	return e, n.Events(e.change, src, observed), nil
}
