package authlog

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults.
const (
	DefaultMaxLineBytes = 64 << 10
	DefaultPollInterval = time.Second
	DefaultRotateWait   = 5 * time.Second
	DefaultFlushAfter   = time.Second
	DefaultSudoWindow   = 5 * time.Second
	DefaultStartAt      = "beginning"
)

// DefaultPrivilegedGroups are the groups whose membership is a privilege:
// adding a user to one is a privilege.grant, not just a group.member.add.
var DefaultPrivilegedGroups = []string{
	"root", "sudo", "wheel", "admin", "adm", "docker", "lxd", "libvirt", "systemd-journal", "shadow", "disk",
}

// Config is the collector "authlog" "NAME" { ... } block:
//
//	collector "authlog" "system" {
//	  paths             = ["/var/log/auth.log", "/var/log/secure"]  # required
//	  timezone          = "Local"      # zone of the traditional layout's stamps
//	  year              = 2026         # fixed year for the traditional layout (default: inferred)
//	  max_line_bytes    = "64KiB"      # longer lines are reported and skipped
//	  start_at          = "beginning"  # or "end": where a first start reads from
//	  poll_interval     = "1s"         # safety-net poll besides fsnotify
//	  rotate_wait       = "5s"         # keep draining a rotated file until idle this long
//	  flush_after       = "1s"         # emit held-back events after this much quiet
//	  sudo_window       = "5s"         # how long a sudo command line can name a change's actor
//	  privileged_groups = ["sudo", "wheel", ...]
//	}
//
// Missing paths are fine (the file may appear later, and both Debian's and
// RHEL's names can be listed).
type Config struct {
	PathsExpr        hcl.Expression `hcl:"paths"`
	TimezoneAttr     *hcl.Attribute `hcl:"timezone,optional"`
	YearAttr         *hcl.Attribute `hcl:"year,optional"`
	MaxLineBytesAttr *hcl.Attribute `hcl:"max_line_bytes,optional"`
	StartAtAttr      *hcl.Attribute `hcl:"start_at,optional"`
	PollIntervalAttr *hcl.Attribute `hcl:"poll_interval,optional"`
	RotateWaitAttr   *hcl.Attribute `hcl:"rotate_wait,optional"`
	FlushAfterAttr   *hcl.Attribute `hcl:"flush_after,optional"`
	SudoWindowAttr   *hcl.Attribute `hcl:"sudo_window,optional"`
	PrivilegedAttr   *hcl.Attribute `hcl:"privileged_groups,optional"`

	// The evaluated values (defaults where unset).
	Paths            []string
	Timezone         string
	Location         *time.Location
	Year             int
	MaxLineBytes     int
	StartAt          string
	PollInterval     time.Duration
	RotateWait       time.Duration
	FlushAfter       time.Duration
	SudoWindow       time.Duration
	PrivilegedGroups []string
}

// DefaultConfig returns a config with every default and no paths.
func DefaultConfig() *Config {
	return &Config{
		Timezone:         "Local",
		Location:         time.Local,
		MaxLineBytes:     DefaultMaxLineBytes,
		StartAt:          DefaultStartAt,
		PollInterval:     DefaultPollInterval,
		RotateWait:       DefaultRotateWait,
		FlushAfter:       DefaultFlushAfter,
		SudoWindow:       DefaultSudoWindow,
		PrivilegedGroups: slices.Clone(DefaultPrivilegedGroups),
	}
}

// DecodeConfig decodes an authlog block body. Unknown attributes and
// blocks are errors; values are evaluated in ctx (env(), file()).
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	c := DefaultConfig()
	diags := gohcl.DecodeBody(body, ctx, c)
	if diags.HasErrors() {
		return c, diags
	}
	evalInto := func(a *hcl.Attribute, dst any) {
		if a != nil {
			diags = append(diags, gohcl.DecodeExpression(a.Expr, ctx, dst)...)
		}
	}
	diags = append(diags, gohcl.DecodeExpression(c.PathsExpr, ctx, &c.Paths)...)
	evalInto(c.TimezoneAttr, &c.Timezone)
	evalInto(c.YearAttr, &c.Year)
	evalInto(c.StartAtAttr, &c.StartAt)
	evalInto(c.PrivilegedAttr, &c.PrivilegedGroups)
	dur := func(a *hcl.Attribute, dst *time.Duration) {
		if a != nil {
			d, ds := hclconfig.Duration(a.Expr, ctx, *dst)
			diags = append(diags, ds...)
			*dst = d
		}
	}
	dur(c.PollIntervalAttr, &c.PollInterval)
	dur(c.RotateWaitAttr, &c.RotateWait)
	dur(c.FlushAfterAttr, &c.FlushAfter)
	dur(c.SudoWindowAttr, &c.SudoWindow)
	if a := c.MaxLineBytesAttr; a != nil {
		n, ds := hclconfig.Size(a.Expr, ctx, int64(c.MaxLineBytes))
		diags = append(diags, ds...)
		if n > 1<<30 {
			n = 1 << 30 // Validate reports it
		}
		c.MaxLineBytes = int(n)
	}
	if !diags.HasErrors() {
		if loc, err := loadLocation(c.Timezone); err == nil {
			c.Location = loc
		}
	}
	return c, diags
}

func loadLocation(name string) (*time.Location, error) {
	switch name {
	case "", "Local", "local":
		return time.Local, nil
	case "UTC", "utc":
		return time.UTC, nil
	}
	return time.LoadLocation(name)
}

// Validate reports every problem with the block, pointing at the
// attribute.
func (c *Config) Validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	badExpr := func(e hcl.Expression, summary, detail string) {
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail}
		if e != nil {
			d.Subject = e.Range().Ptr()
		}
		diags = append(diags, d)
	}
	bad := func(a *hcl.Attribute, summary, detail string) {
		var e hcl.Expression
		if a != nil {
			e = a.Expr
		}
		badExpr(e, summary, detail)
	}
	if len(c.Paths) == 0 {
		badExpr(c.PathsExpr, "No paths", "paths is required: authlog needs at least one file, such as \"/var/log/auth.log\" or \"/var/log/secure\".")
	}
	seen := map[string]bool{}
	for _, p := range c.Paths {
		switch {
		case p == "":
			badExpr(c.PathsExpr, "Empty path", "Every entry of paths must name a file.")
		case !filepath.IsAbs(p):
			badExpr(c.PathsExpr, "Relative path", fmt.Sprintf("%q: paths must be absolute.", p))
		case strings.HasSuffix(p, ".gz"):
			badExpr(c.PathsExpr, "Compressed file", fmt.Sprintf("%q: authlog follows plain-text logs; rotated .gz files are not read.", p))
		case seen[filepath.Clean(p)]:
			badExpr(c.PathsExpr, "Duplicate path", fmt.Sprintf("%q is listed twice.", p))
		}
		seen[filepath.Clean(p)] = true
	}
	if _, err := loadLocation(c.Timezone); err != nil {
		bad(c.TimezoneAttr, "Unknown time zone", fmt.Sprintf("%q: %v. Use \"Local\", \"UTC\" or an IANA name such as \"Europe/Berlin\".", c.Timezone, err))
	}
	if c.Year != 0 && (c.Year < 1970 || c.Year > 9999) {
		bad(c.YearAttr, "Invalid year", fmt.Sprintf("%d is not a year between 1970 and 9999; leave year unset to infer it.", c.Year))
	}
	if c.MaxLineBytes < 256 || c.MaxLineBytes > 16<<20 {
		bad(c.MaxLineBytesAttr, "Invalid max_line_bytes", fmt.Sprintf("%d bytes is outside 256 B to 16 MiB.", c.MaxLineBytes))
	}
	if c.StartAt != "beginning" && c.StartAt != "end" {
		bad(c.StartAtAttr, "Invalid start_at", fmt.Sprintf("%q: use \"beginning\" or \"end\".", c.StartAt))
	}
	for _, d := range []struct {
		a    *hcl.Attribute
		name string
		v    time.Duration
		min  time.Duration
	}{
		{c.PollIntervalAttr, "poll_interval", c.PollInterval, 10 * time.Millisecond},
		{c.RotateWaitAttr, "rotate_wait", c.RotateWait, 0},
		{c.FlushAfterAttr, "flush_after", c.FlushAfter, 0},
		{c.SudoWindowAttr, "sudo_window", c.SudoWindow, 0},
	} {
		if d.v < d.min || d.v > time.Hour {
			bad(d.a, "Invalid "+d.name, fmt.Sprintf("%s is outside %s to 1h.", d.v, d.min))
		}
	}
	for _, g := range c.PrivilegedGroups {
		if g == "" || strings.ContainsAny(g, " :,'") {
			bad(c.PrivilegedAttr, "Invalid group name", fmt.Sprintf("%q is not a group name.", g))
		}
	}
	return diags
}

// options turns a valid config into the parser's runtime options.
func (c *Config) options() options {
	loc := c.Location
	if loc == nil {
		loc = time.Local
	}
	priv := make(map[string]bool, len(c.PrivilegedGroups))
	for _, g := range c.PrivilegedGroups {
		priv[g] = true
	}
	return options{
		loc:        loc,
		year:       c.Year,
		now:        time.Now,
		maxLine:    c.MaxLineBytes,
		sudoWindow: c.SudoWindow,
		privileged: priv,
	}
}
