package accesslog

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
	DefaultBaseDN       = "cn=accesslog"
	DefaultPollInterval = 5 * time.Second
	DefaultPageSize     = 500
)

// Config is the collector "ldap_accesslog" "NAME" block:
//
//	collector "ldap_accesslog" "main" {
//	  url                = "ldap://ldap.example.com"
//	  bind_dn            = "cn=auditreader,dc=example,dc=com"
//	  bind_password_file = "/etc/provtrail/ldap.pw"   # or bind_password = env("LDAP_PW")
//	  base_dn            = "cn=accesslog"             # default
//	  tls_ca_file        = "/etc/ssl/ldap-ca.pem"
//	  start_tls          = true
//	  privileged_groups  = ["cn=sudo,ou=groups,dc=example,dc=com"]
//	  user_classes       = ["inetOrgPerson", "posixAccount"]   # defaults: norm.DefaultUserClasses
//	  group_classes      = ["groupOfNames", "posixGroup"]      # defaults: norm.DefaultGroupClasses
//	  secret_attributes  = ["myAppToken"]           # redacted in addition to the built-in list
//	  poll_interval      = "5s"                     # polling fallback when the log has no syncprov
//	  page_size          = 500
//	}
type Config struct {
	conn.Common
	PollInterval time.Duration

	ranges conn.Ranges
}

type specific struct {
	PollInterval hcl.Expression `hcl:"poll_interval,optional"`
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
