package accounts

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults.
const (
	DefaultRoot         = "/"
	DefaultPollInterval = 30 * time.Second
	DefaultDebounce     = 250 * time.Millisecond
)

// DefaultPrivilegedGroups are the groups whose membership grants
// administrative power on common distributions.
var DefaultPrivilegedGroups = []string{"sudo", "wheel", "admin", "adm", "root", "docker", "lxd", "libvirt", "shadow", "disk"}

// hclBlock is the user-facing schema of a collector "accounts" block:
//
//	collector "accounts" "local" {
//	  root              = "/"        # the tree holding etc/passwd ...
//	  poll_interval     = "30s"      # safety-net poll; fsnotify wakes us first
//	  debounce          = "250ms"    # wait after a change before reading
//	  privileged_groups = ["sudo", "wheel"]
//	  sudoers           = true       # also diff etc/sudoers and etc/sudoers.d
//	}
type hclBlock struct {
	Root             hcl.Expression `hcl:"root,optional"`
	PollInterval     hcl.Expression `hcl:"poll_interval,optional"`
	Debounce         hcl.Expression `hcl:"debounce,optional"`
	PrivilegedGroups *[]string      `hcl:"privileged_groups,optional"`
	Sudoers          *bool          `hcl:"sudoers,optional"`
}

// Config is the runtime configuration of the accounts collector.
type Config struct {
	Root             string
	PollInterval     time.Duration
	Debounce         time.Duration
	PrivilegedGroups []string
	Sudoers          bool

	rootRange, pollRange, debounceRange hcl.Range
}

// DefaultConfig returns the configuration of an empty block.
func DefaultConfig() *Config {
	return &Config{
		Root:             DefaultRoot,
		PollInterval:     DefaultPollInterval,
		Debounce:         DefaultDebounce,
		PrivilegedGroups: append([]string(nil), DefaultPrivilegedGroups...),
		Sudoers:          true,
	}
}

func decodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	var b hclBlock
	diags := gohcl.DecodeBody(body, ctx, &b)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg := DefaultConfig()
	var d hcl.Diagnostics
	cfg.Root, d = stringAttr(b.Root, ctx, DefaultRoot)
	diags = append(diags, d...)
	if b.Root != nil {
		cfg.rootRange = b.Root.Range()
	}
	cfg.PollInterval, d = hclconfig.Duration(b.PollInterval, ctx, DefaultPollInterval)
	diags = append(diags, d...)
	if b.PollInterval != nil {
		cfg.pollRange = b.PollInterval.Range()
	}
	cfg.Debounce, d = hclconfig.Duration(b.Debounce, ctx, DefaultDebounce)
	diags = append(diags, d...)
	if b.Debounce != nil {
		cfg.debounceRange = b.Debounce.Range()
	}
	if b.PrivilegedGroups != nil {
		cfg.PrivilegedGroups = *b.PrivilegedGroups
	}
	if b.Sudoers != nil {
		cfg.Sudoers = *b.Sudoers
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	if !filepath.IsAbs(c.Root) {
		diags = append(diags, hclconfig.Error(c.rootRange, "Invalid root",
			fmt.Sprintf("root must be an absolute path, got %q.", c.Root)))
	}
	if c.PollInterval < time.Second {
		diags = append(diags, hclconfig.Error(c.pollRange, "Invalid poll_interval",
			"poll_interval must be at least 1s."))
	}
	if c.Debounce > 10*time.Second {
		diags = append(diags, hclconfig.Error(c.debounceRange, "Invalid debounce",
			"debounce must be at most 10s: it delays every event."))
	}
	return diags
}

// stringAttr evaluates an optional string attribute; absent yields def.
func stringAttr(expr hcl.Expression, ctx *hcl.EvalContext, def string) (string, hcl.Diagnostics) {
	if expr == nil {
		return def, nil
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return def, diags
	}
	if v.IsNull() {
		return def, nil
	}
	if v.Type() != cty.String || !v.IsKnown() {
		return def, hcl.Diagnostics{hclconfig.Error(expr.Range(), "Invalid value", "A string is required here.")}
	}
	return v.AsString(), nil
}
