package changelog

import (
	"log/slog"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/conn"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults.
const (
	DefaultBaseDN       = "cn=changelog"
	DefaultPollInterval = 5 * time.Second
	DefaultPageSize     = 500
)

// Config is the collector "ldap_changelog" "NAME" block:
//
//	collector "ldap_changelog" "ipa" {
//	  url                = "ldaps://ipa.example.com"
//	  bind_dn            = "uid=provtrail,cn=sysaccounts,cn=etc,dc=example,dc=com"
//	  bind_password_file = "/etc/provtrail/ipa.pw"    # or bind_password = env("IPA_PW")
//	  base_dn            = "cn=changelog"             # default
//	  tls_ca_file        = "/etc/ipa/ca.crt"
//	  start_tls          = false
//	  privileged_groups  = ["cn=admins,cn=groups,cn=accounts,dc=example,dc=com"]
//	  user_classes       = ["inetOrgPerson", "ipaUser"]
//	  group_classes      = ["groupOfNames", "ipaUserGroup"]
//	  secret_attributes  = []
//	  poll_interval      = "5s"
//	  page_size          = 500
//	  persistent_search  = true   # wake on the server's psearch, poll anyway
//	  skip_replicated    = false  # see below
//	}
//
// Every supplier of a replicated topology (FreeIPA replicas) logs every
// change in its own changelog, the replicated ones with isReplicated:
// TRUE when the Retro Changelog Plugin has "nsslapd-attribute:
// isReplicated". With a collector on each supplier, skip_replicated = true
// makes each change an event once, from the supplier it was made on. With
// one collector for the topology, leave it false.
type Config struct {
	conn.Common
	PollInterval     time.Duration
	PersistentSearch bool
	SkipReplicated   bool

	ranges conn.Ranges
}

type specific struct {
	PollInterval     hcl.Expression `hcl:"poll_interval,optional"`
	PersistentSearch *bool          `hcl:"persistent_search,optional"`
	SkipReplicated   *bool          `hcl:"skip_replicated,optional"`
}

// LogValue never shows the password.
func (c *Config) LogValue() slog.Value { return c.Common.Options().LogValue() }

// String never shows the password.
func (c *Config) String() string { return c.Common.Options().String() }

// GoString never shows the password.
func (c *Config) GoString() string { return c.String() }

func decodeConfig(body hcl.Body, ctx *hcl.EvalContext) (collectors.Config, hcl.Diagnostics) {
	c := &Config{ranges: conn.NewRanges(body)}
	diags := gohcl.DecodeBody(body, ctx, &c.Common)
	if diags.HasErrors() {
		return nil, diags
	}
	var sp specific
	if c.Common.Remain != nil {
		diags = append(diags, gohcl.DecodeBody(c.Common.Remain, ctx, &sp)...)
		if diags.HasErrors() {
			return nil, diags
		}
	}
	d, dd := hclconfig.Duration(sp.PollInterval, ctx, DefaultPollInterval)
	diags = append(diags, dd...)
	c.PollInterval = d
	if sp.PersistentSearch != nil {
		c.PersistentSearch = *sp.PersistentSearch
	}
	if sp.SkipReplicated != nil {
		c.SkipReplicated = *sp.SkipReplicated
	}
	c.Common.ResolvePaths(c.ranges)
	if c.BaseDN == "" {
		c.BaseDN = DefaultBaseDN
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	return c, diags
}

// Validate reports every problem with the block.
func (c *Config) Validate() hcl.Diagnostics {
	diags := c.Common.Validate(c.ranges)
	if c.PollInterval < 100*time.Millisecond {
		diags = append(diags, hclconfig.Error(c.ranges.At("poll_interval"), "Invalid poll_interval", "poll_interval must be at least 100ms."))
	}
	return diags
}
