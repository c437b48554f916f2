package okta

import (
	"net/url"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors/internal/window"
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

	window.Block
	base *url.URL
}

// defaultWindow is the shared defaults with a shorter settle lag and
// overlap for the System Log.
func defaultWindow() window.Settings {
	s := window.DefaultSettings(DefaultRequestsPerMinute)
	s.Config.SettleLag = 2 * time.Minute
	s.Config.Overlap = 15 * time.Minute
	return s
}

// DecodeConfig decodes a collector "okta" block.
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	c := &Config{}
	return window.DecodeBlock(body, ctx, c, &c.Remain, defaultWindow())
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	v := c.Check()
	switch {
	case c.Domain == "" && c.BaseURL == "":
		v.Bad("Missing okta domain", `Set domain = "ORG.okta.com" (or base_url).`)
	case c.Domain != "" && c.BaseURL != "":
		v.Bad("Conflicting okta endpoint", "Set domain or base_url, not both.")
	default:
		c.base = v.URL("okta endpoint", c.BaseURL, "https://"+c.Domain)
	}
	if c.Token != "" && c.TokenFile != "" {
		v.Bad("Conflicting okta credentials", "Set token or token_file, not both.")
	}
	if c.OAuth != nil {
		if c.Token != "" || c.TokenFile != "" {
			v.Bad("Conflicting okta credentials", "Use an API token (token, token_file) or an oauth block, not both.")
		}
		v.URL("oauth token_url", c.OAuth.TokenURL, "")
	}
	v.PageSize(c.PageSize, 1000)
	return v.Diagnostics()
}

// token returns the SSWS API token from the config, token_file or env.
func (c *Config) token() (string, error) {
	return window.Secret("Okta API token", c.Token, c.TokenFile, TokenEnv)
}
