package auditd

import (
	"fmt"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// DefaultPath is where auditd writes on every major distribution.
const DefaultPath = "/var/log/audit/audit.log"

// DefaultPrivilegedGroups are the groups whose membership is a privilege.
var DefaultPrivilegedGroups = []string{"sudo", "wheel", "admin", "adm", "root", "docker", "lxd", "libvirt", "shadow", "disk"}

// hclBlock is the user-facing schema:
//
//	collector "auditd" "local" {
//	  path              = "/var/log/audit/audit.log"
//	  privileged_groups = ["sudo", "wheel"]
//	}
type hclBlock struct {
	Path             *string   `hcl:"path,optional"`
	PrivilegedGroups *[]string `hcl:"privileged_groups,optional"`
}

// Config is the runtime configuration of the auditd collector.
type Config struct {
	Path             string
	PrivilegedGroups []string
}

// DefaultConfig returns the configuration of an empty block.
func DefaultConfig() *Config {
	return &Config{Path: DefaultPath, PrivilegedGroups: append([]string(nil), DefaultPrivilegedGroups...)}
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
	if !filepath.IsAbs(cfg.Path) {
		attrs, _ := body.JustAttributes()
		rng := hcl.Range{}
		if a, ok := attrs["path"]; ok {
			rng = a.Expr.Range()
		}
		diags = append(diags, hclconfig.Error(rng, "Invalid path", fmt.Sprintf("path must be absolute, got %q.", cfg.Path)))
		return nil, diags
	}
	return cfg, diags
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() hcl.Diagnostics {
	if !filepath.IsAbs(c.Path) {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid path", Detail: fmt.Sprintf("path must be absolute, got %q.", c.Path)}}
	}
	return nil
}

func (c *Config) privileged() map[string]bool {
	m := map[string]bool{}
	for _, g := range c.PrivilegedGroups {
		m[g] = true
	}
	return m
}
