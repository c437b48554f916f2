package window

import (
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Attrs are the HCL attributes every windowed collector block accepts. A
// source decodes its own attributes into a struct with a `hcl:",remain"`
// body and hands that body to DecodeAttrs, so unknown attributes are still
// errors and the shared ones are documented once:
//
//	settle_lag          = "15m"   # windows end this long before now
//	overlap             = "30m"   # each window re-reads this much of the last
//	max_window          = "1h"    # longest window (backfill step)
//	poll_interval       = "1m"    # shortest window once caught up
//	rescan_interval     = "1h"    # how often to re-read the recent past ("0" = never)
//	rescan_lookback     = "24h"   # how far back a re-scan reads
//	backfill_since      = "72h"   # first start: read this far back (or an RFC 3339 time)
//	requests_per_minute = 60      # pace (default: the provider's documented ceiling)
type Attrs struct {
	SettleLag         hcl.Expression `hcl:"settle_lag,optional"`
	Overlap           hcl.Expression `hcl:"overlap,optional"`
	MaxWindow         hcl.Expression `hcl:"max_window,optional"`
	PollInterval      hcl.Expression `hcl:"poll_interval,optional"`
	RescanInterval    hcl.Expression `hcl:"rescan_interval,optional"`
	RescanLookback    hcl.Expression `hcl:"rescan_lookback,optional"`
	BackfillSince     hcl.Expression `hcl:"backfill_since,optional"`
	RequestsPerMinute hcl.Expression `hcl:"requests_per_minute,optional"`
}

// Settings is the decoded shared part of a collector block.
type Settings struct {
	Config Config
	// BackfillAgo, when set, places BackfillSince that long before the
	// collector's first start.
	BackfillAgo       time.Duration
	RequestsPerMinute float64
}

// Resolve returns the engine configuration for a first start at now.
func (s Settings) Resolve(now time.Time) Config {
	c := s.Config
	if s.BackfillAgo > 0 {
		c.BackfillSince = now.Add(-s.BackfillAgo)
	}
	return c
}

// DecodeAttrs decodes the shared attributes in body (the remain of a
// source's block), starting from def, and checks them.
func DecodeAttrs(body hcl.Body, ctx *hcl.EvalContext, def Settings) (Settings, hcl.Diagnostics) {
	var a Attrs
	diags := gohcl.DecodeBody(body, ctx, &a)
	if diags.HasErrors() {
		return def, diags
	}
	s := def
	dur := func(expr hcl.Expression, dst *time.Duration) {
		d, ds := hclconfig.Duration(expr, ctx, *dst)
		diags = append(diags, ds...)
		*dst = d
	}
	dur(a.SettleLag, &s.Config.SettleLag)
	dur(a.Overlap, &s.Config.Overlap)
	dur(a.MaxWindow, &s.Config.MaxWindow)
	dur(a.PollInterval, &s.Config.PollInterval)
	dur(a.RescanInterval, &s.Config.RescanInterval)
	dur(a.RescanLookback, &s.Config.RescanLookback)
	if a.BackfillSince != nil && !absent(a.BackfillSince) {
		v, ds := a.BackfillSince.Value(ctx)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			if v.Type() != cty.String || v.IsNull() {
				diags = append(diags, hclconfig.Error(a.BackfillSince.Range(), "Invalid backfill_since",
					"A string is required: a duration before the first start such as \"72h\", or an RFC 3339 time."))
			} else if d, err := time.ParseDuration(v.AsString()); err == nil && d >= 0 {
				s.BackfillAgo = d
			} else if t, err := time.Parse(time.RFC3339, v.AsString()); err == nil {
				s.Config.BackfillSince = t.UTC()
			} else {
				diags = append(diags, hclconfig.Error(a.BackfillSince.Range(), "Invalid backfill_since",
					fmt.Sprintf("%q is neither a duration such as \"72h\" nor an RFC 3339 time.", v.AsString())))
			}
		}
	}
	if a.RequestsPerMinute != nil && !absent(a.RequestsPerMinute) {
		v, ds := a.RequestsPerMinute.Value(ctx)
		diags = append(diags, ds...)
		if !ds.HasErrors() {
			if v.Type() != cty.Number || v.IsNull() {
				diags = append(diags, hclconfig.Error(a.RequestsPerMinute.Range(), "Invalid requests_per_minute", "A number is required."))
			} else if f, _ := v.AsBigFloat().Float64(); f <= 0 {
				diags = append(diags, hclconfig.Error(a.RequestsPerMinute.Range(), "Invalid requests_per_minute", "It must be greater than 0."))
			} else {
				s.RequestsPerMinute = f
			}
		}
	}
	if diags.HasErrors() {
		return s, diags
	}
	c := s.Config
	if c.MaxWindow <= 0 {
		diags = append(diags, hclconfig.Error(rangeOr(a.MaxWindow, body), "Invalid max_window", "max_window must be greater than 0."))
	}
	if c.PollInterval <= 0 {
		diags = append(diags, hclconfig.Error(rangeOr(a.PollInterval, body), "Invalid poll_interval", "poll_interval must be greater than 0."))
	}
	if c.RescanInterval > 0 && c.RescanLookback <= c.Overlap {
		diags = append(diags, hclconfig.Error(rangeOr(a.RescanLookback, body), "Invalid rescan_lookback",
			fmt.Sprintf("rescan_lookback (%s) must be longer than overlap (%s), or a re-scan reads nothing the overlap does not.", c.RescanLookback, c.Overlap)))
	}
	return s, diags
}

// absent reports whether an optional attribute was left out: gohcl gives
// it a synthetic null expression (whose range may name the file).
func absent(expr hcl.Expression) bool {
	if len(expr.Variables()) > 0 {
		return false
	}
	v, diags := expr.Value(nil)
	return !diags.HasErrors() && v.IsNull()
}

func rangeOr(expr hcl.Expression, body hcl.Body) hcl.Range {
	if expr != nil && !absent(expr) {
		return expr.Range()
	}
	if b, ok := body.(interface{ MissingItemRange() hcl.Range }); ok {
		return b.MissingItemRange()
	}
	return hcl.Range{}
}
