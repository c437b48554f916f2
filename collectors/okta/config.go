package okta

import (
	"net/url"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults. Okta documents /api/v1/logs limits of 20 to 120 requests a
// minute depending on the org's plan; 60 is the pace unless configured, and
// the X-Rate-Limit-* headers of every reply slow it further when needed.
const (
	DefaultRequestsPerMinute = 60
	DefaultPageSize          = 1000
	// TokenEnv is read when neither token nor token_file is set (the
	// variable the Okta SDKs use).
	TokenEnv = "OKTA_CLIENT_TOKEN"
)

// Config is the collector "okta" block:
//
//	collector "okta" "corp" {
//	  domain     = "acme.okta.com"      # or base_url = "https://acme.okta.com"
//	  token_file = "/etc/provtrail/okta.token"   # or token = env("OKTA_API_TOKEN")
//	  backfill_since = "72h"
//	  # settle_lag, overlap, ... (see the window attributes)
//	}
type Config struct {
	Domain    string       `hcl:"domain,optional"`
	BaseURL   string       `hcl:"base_url,optional"`
	Token     string       `hcl:"token,optional"`
	TokenFile string       `hcl:"token_file,optional"`
	PageSize  int          `hcl:"page_size,optional"`
	OAuth     *OAuthConfig `hcl:"oauth,block"`
	Remain    hcl.Body     `hcl:",remain"`

	Window window.Settings
	base   *url.URL
	rng    hcl.Range
}

func defaultWindow() window.Settings {
	return window.Settings{
		Config: window.Config{
			SettleLag:      2 * time.Minute,
			Overlap:        15 * time.Minute,
			MaxWindow:      window.DefaultMaxWindow,
			PollInterval:   window.DefaultPollInterval,
			RescanInterval: window.DefaultRescanInterval,
			RescanLookback: window.DefaultRescanLookback,
		},
		RequestsPerMinute: DefaultRequestsPerMinute,
	}
}

// DecodeConfig decodes a collector "okta" block.
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	c := &Config{}
	diags := gohcl.DecodeBody(body, ctx, c)
	if diags.HasErrors() {
		return nil, diags
	}
	if b, ok := body.(interface{ MissingItemRange() hcl.Range }); ok {
		c.rng = b.MissingItemRange()
	}
	var ds hcl.Diagnostics
	c.Window, ds = window.DecodeAttrs(c.Remain, ctx, defaultWindow())
	diags = append(diags, ds...)
	return c, diags
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(summary, detail string) {
		diags = append(diags, hclconfig.Error(c.rng, summary, detail))
	}
	switch {
	case c.Domain == "" && c.BaseURL == "":
		bad("Missing okta domain", `Set domain = "ORG.okta.com" (or base_url).`)
	case c.Domain != "" && c.BaseURL != "":
		bad("Conflicting okta endpoint", "Set domain or base_url, not both.")
	default:
		raw := c.BaseURL
		if raw == "" {
			raw = "https://" + c.Domain
		}
		u, err := window.BaseURL(raw)
		if err != nil {
			bad("Invalid okta endpoint", err.Error())
		}
		c.base = u
	}
	if c.Token != "" && c.TokenFile != "" {
		bad("Conflicting okta credentials", "Set token or token_file, not both.")
	}
	if c.OAuth != nil {
		if c.Token != "" || c.TokenFile != "" {
			bad("Conflicting okta credentials", "Use an API token (token, token_file) or an oauth block, not both.")
		}
		if c.OAuth.TokenURL != "" {
			if _, err := window.BaseURL(c.OAuth.TokenURL); err != nil {
				bad("Invalid oauth token_url", err.Error())
			}
		}
	}
	if c.PageSize < 0 || c.PageSize > 1000 {
		bad("Invalid page_size", "page_size must be between 1 and 1000.")
	}
	return diags
}

// token returns the SSWS API token from the config, token_file or env.
func (c *Config) token() (string, error) {
	return window.Secret("Okta API token", c.Token, c.TokenFile, TokenEnv)
}
