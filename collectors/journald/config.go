package journald

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults.
const (
	DefaultJournalctl = "/usr/bin/journalctl"
	DefaultStartAt    = "end"
	DefaultBurstIdle  = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// DefaultMatches select authpriv and auth syslog messages, or audit
// records: journalctl ORs repeated fields and "+"-separated groups.
var DefaultMatches = []string{"SYSLOG_FACILITY=10", "SYSLOG_FACILITY=4", "+", "_TRANSPORT=audit"}

// DefaultPrivilegedGroups are the groups whose membership is a privilege.
var DefaultPrivilegedGroups = []string{"sudo", "wheel", "admin", "adm", "root", "docker", "lxd", "libvirt", "shadow", "disk"}

// hclBlock is the user-facing schema:
//
//	collector "journald" "local" {
//	  journalctl        = "/usr/bin/journalctl"
//	  namespace         = ""          # journalctl --namespace
//	  directory         = ""          # journalctl --directory (journal files)
//	  matches           = ["SYSLOG_FACILITY=10", "SYSLOG_FACILITY=4", "+", "_TRANSPORT=audit"]
//	  start_at          = "end"       # first start without a cursor: "end" or "beginning"
//	  burst_idle        = "200ms"     # entries arriving closer than this are read together
//	  privileged_groups = ["sudo", "wheel"]
//	}
type hclBlock struct {
	Journalctl       *string        `hcl:"journalctl,optional"`
	Namespace        *string        `hcl:"namespace,optional"`
	Directory        *string        `hcl:"directory,optional"`
	Matches          *[]string      `hcl:"matches,optional"`
	StartAt          *string        `hcl:"start_at,optional"`
	BurstIdle        hcl.Expression `hcl:"burst_idle,optional"`
	PrivilegedGroups *[]string      `hcl:"privileged_groups,optional"`
}

// Config is the runtime configuration of the journald collector.
type Config struct {
	Journalctl       string
	Namespace        string
	Directory        string
	Matches          []string
	StartAt          string
	BurstIdle        time.Duration
	PrivilegedGroups []string
	// MaxBackoff caps the wait before restarting journalctl.
	MaxBackoff time.Duration
}

// DefaultConfig returns the configuration of an empty block.
func DefaultConfig() *Config {
	return &Config{
		Journalctl:       DefaultJournalctl,
		Matches:          append([]string(nil), DefaultMatches...),
		StartAt:          DefaultStartAt,
		BurstIdle:        DefaultBurstIdle,
		PrivilegedGroups: append([]string(nil), DefaultPrivilegedGroups...),
		MaxBackoff:       DefaultMaxBackoff,
	}
}

func decodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	var b hclBlock
	diags := gohcl.DecodeBody(body, ctx, &b)
	if diags.HasErrors() {
		return nil, diags
	}
	c := DefaultConfig()
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.Journalctl, b.Journalctl)
	set(&c.Namespace, b.Namespace)
	set(&c.Directory, b.Directory)
	set(&c.StartAt, b.StartAt)
	if b.Matches != nil {
		c.Matches = *b.Matches
	}
	if b.PrivilegedGroups != nil {
		c.PrivilegedGroups = *b.PrivilegedGroups
	}
	var d hcl.Diagnostics
	c.BurstIdle, d = hclconfig.Duration(b.BurstIdle, ctx, DefaultBurstIdle)
	diags = append(diags, d...)
	if diags.HasErrors() {
		return nil, diags
	}
	return c, diags
}

// Validate reports every problem with the configuration.
func (c *Config) Validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail})
	}
	if !filepath.IsAbs(c.Journalctl) {
		bad("Invalid journalctl", fmt.Sprintf("journalctl must be an absolute path, got %q.", c.Journalctl))
	}
	if c.Directory != "" && !filepath.IsAbs(c.Directory) {
		bad("Invalid directory", fmt.Sprintf("directory must be an absolute path, got %q.", c.Directory))
	}
	if c.Directory != "" && c.Namespace != "" {
		bad("Conflicting attributes", "set namespace or directory, not both.")
	}
	if c.StartAt != "end" && c.StartAt != "beginning" {
		bad("Invalid start_at", fmt.Sprintf("start_at must be \"end\" or \"beginning\", got %q.", c.StartAt))
	}
	if c.BurstIdle <= 0 || c.BurstIdle > 10*time.Second {
		bad("Invalid burst_idle", "burst_idle must be between 1ms and 10s.")
	}
	for _, m := range c.Matches {
		if m != "+" && !validMatch(m) {
			bad("Invalid match", fmt.Sprintf("%q is not FIELD=value or \"+\".", m))
		}
	}
	return diags
}

func validMatch(m string) bool {
	k, _, ok := stringsCut(m, '=')
	if !ok || k == "" {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func stringsCut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
