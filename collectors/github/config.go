package github

import (
	"net/url"
	"regexp"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors/internal/window"
)

// Defaults. GitHub allows 1,750 audit-log queries an hour per user and IP:
// 29 a minute stays under it.
const (
	DefaultRequestsPerMinute = 29
	DefaultBaseURL           = "https://api.github.com"
	DefaultPageSize          = 100
	TokenEnv                 = "GITHUB_TOKEN"
)

// Config is the collector "github" block:
//
//	collector "github" "octo" {
//	  org        = "octo-org"
//	  token_file = "/etc/provtrail/github.token"   # or token = env("GITHUB_TOKEN"), or $GITHUB_TOKEN
//	  # base_url = "https://github.example.com/api/v3"   # GitHub Enterprise Server, tests
//	  # include  = "web"                                 # web | git | all
//	}
type Config struct {
	Org       string   `hcl:"org"`
	Token     string   `hcl:"token,optional"`
	TokenFile string   `hcl:"token_file,optional"`
	BaseURL   string   `hcl:"base_url,optional"`
	Include   string   `hcl:"include,optional"`
	PageSize  int      `hcl:"page_size,optional"`
	Remain    hcl.Body `hcl:",remain"`

	window.Block
	base *url.URL
}

var orgName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}$`)

// DecodeConfig decodes a collector "github" block.
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	c := &Config{}
	return window.DecodeBlock(body, ctx, c, &c.Remain, window.DefaultSettings(DefaultRequestsPerMinute))
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	v := c.Check()
	if !orgName.MatchString(c.Org) {
		v.Bad("Invalid org", "org is a GitHub organisation login such as \"octo-org\".")
	}
	c.base = v.URL("base_url", c.BaseURL, DefaultBaseURL)
	if c.Token != "" && c.TokenFile != "" {
		v.Bad("Conflicting github credentials", "Set token or token_file, not both.")
	}
	switch c.Include {
	case "", "web", "git", "all":
	default:
		v.Bad("Invalid include", `include is "web", "git" or "all".`)
	}
	v.PageSize(c.PageSize, 100)
	return v.Diagnostics()
}
