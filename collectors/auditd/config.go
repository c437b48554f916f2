package auditd

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/tail"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// DefaultPath is where auditd writes on every major distribution.
const DefaultPath = "/var/log/audit/audit.log"

// DefaultPrivilegedGroups are the groups whose membership is a privilege.
var DefaultPrivilegedGroups = []string{"sudo", "wheel", "admin", "adm", "root", "docker", "lxd", "libvirt", "shadow", "disk"}

// Defaults of the file following.
const (
	DefaultPollInterval = tail.DefaultPollInterval
	// DefaultRotateWait is shorter than authlog's: auditd closes the old
	// file before it renames it, nothing writes to it afterwards.
	DefaultRotateWait = time.Second
	DefaultStartAt    = tail.StartBeginning
)

// hclBlock is the user-facing schema:
//
//	collector "auditd" "local" {
//	  path              = "/var/log/audit/audit.log"
//	  privileged_groups = ["sudo", "wheel"]
//	  start_at          = "beginning"  # or "end": where a first start reads from
//	  poll_interval     = "1s"         # safety-net poll besides fsnotify
//	  rotate_wait       = "1s"         # keep draining a rotated audit.log until idle this long
//	}
type hclBlock struct {
	Path             *string        `hcl:"path,optional"`
	PrivilegedGroups *[]string      `hcl:"privileged_groups,optional"`
	StartAt          *string        `hcl:"start_at,optional"`
	PollInterval     hcl.Expression `hcl:"poll_interval,optional"`
	RotateWait       hcl.Expression `hcl:"rotate_wait,optional"`
}

// Config is the runtime configuration of the auditd collector.
type Config struct {
	Path             string
	PrivilegedGroups []string
	// StartAt, PollInterval and RotateWait configure the shared tailer
	// (see collectors/internal/tail).
	StartAt      string
	PollInterval time.Duration
	RotateWait   time.Duration
}

// DefaultConfig returns the configuration of an empty block.
func DefaultConfig() *Config {
	return &Config{
		Path:             DefaultPath,
		PrivilegedGroups: append([]string(nil), DefaultPrivilegedGroups...),
		StartAt:          DefaultStartAt,
		PollInterval:     DefaultPollInterval,
		RotateWait:       DefaultRotateWait,
	}
}

func decodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	var b hclBlock
	diags := gohcl.DecodeBody(body, ctx, &b)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg := DefaultConfig()
	if b.Path != nil {
		cfg.Path = *b.Path
	}
	if b.PrivilegedGroups != nil {
		cfg.PrivilegedGroups = *b.PrivilegedGroups
	}
	if b.StartAt != nil {
		cfg.StartAt = *b.StartAt
	}
	var ds hcl.Diagnostics
	cfg.PollInterval, ds = hclconfig.Duration(b.PollInterval, ctx, cfg.PollInterval)
	diags = append(diags, ds...)
	cfg.RotateWait, ds = hclconfig.Duration(b.RotateWait, ctx, cfg.RotateWait)
	diags = append(diags, ds...)
	if diags.HasErrors() {
		return nil, diags
	}
	attrs, _ := body.JustAttributes()
	rangeOf := func(name string) hcl.Range {
		if a, ok := attrs[name]; ok {
			return a.Expr.Range()
		}
		return hcl.Range{}
	}
	for _, p := range cfg.problems() {
		diags = append(diags, hclconfig.Error(rangeOf(p.attr), p.summary, p.detail))
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// configProblem is one thing wrong with a Config, and the attribute.
type configProblem struct{ attr, summary, detail string }

func (c *Config) problems() []configProblem {
	var ps []configProblem
	if !filepath.IsAbs(c.Path) {
		ps = append(ps, configProblem{"path", "Invalid path", fmt.Sprintf("path must be absolute, got %q.", c.Path)})
	}
	if c.StartAt != tail.StartBeginning && c.StartAt != tail.StartEnd {
		ps = append(ps, configProblem{"start_at", "Invalid start_at", fmt.Sprintf("%q: use \"beginning\" or \"end\".", c.StartAt)})
	}
	if c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Hour {
		ps = append(ps, configProblem{"poll_interval", "Invalid poll_interval", fmt.Sprintf("%s is outside 10ms to 1h.", c.PollInterval)})
	}
	if c.RotateWait < 0 || c.RotateWait > time.Hour {
		ps = append(ps, configProblem{"rotate_wait", "Invalid rotate_wait", fmt.Sprintf("%s is outside 0s to 1h.", c.RotateWait)})
	}
	return ps
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, p := range c.problems() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: p.summary, Detail: p.detail})
	}
	return diags
}

// tailConfig is the shared tailer's configuration for this collector.
func (c *Config) tailConfig(set collectors.Settings) tail.Config {
	tc := tail.DefaultConfig()
	tc.PollInterval, tc.RotateWait, tc.StartAt = c.PollInterval, c.RotateWait, c.StartAt
	// The tailer reports longer records (with file and offset) and skips
	// them without buffering them whole.
	tc.MaxLineBytes = MaxLineLength
	tc.Logger, tc.Problems = set.Logger, set.Problems
	return tc
}

func (c *Config) privileged() map[string]bool {
	m := map[string]bool{}
	for _, g := range c.PrivilegedGroups {
		m[g] = true
	}
	return m
}
