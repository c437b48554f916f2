package github

import (
	"net/url"
	"regexp"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/internal/hclconfig"
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

	Window window.Settings
	base   *url.URL
	rng    hcl.Range
}

var orgName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}$`)

func defaultWindow() window.Settings {
	return window.Settings{
		Config: window.Config{
			SettleLag:      window.DefaultSettleLag,
			Overlap:        window.DefaultOverlap,
			MaxWindow:      window.DefaultMaxWindow,
			PollInterval:   window.DefaultPollInterval,
			RescanInterval: window.DefaultRescanInterval,
			RescanLookback: window.DefaultRescanLookback,
		},
		RequestsPerMinute: DefaultRequestsPerMinute,
	}
}

// DecodeConfig decodes a collector "github" block.
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
	return c, append(diags, ds...)
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	var diags hcl.Diagnostics
	bad := func(summary, detail string) {
		diags = append(diags, hclconfig.Error(c.rng, summary, detail))
	}
	if !orgName.MatchString(c.Org) {
		bad("Invalid org", "org is a GitHub organisation login such as \"octo-org\".")
	}
	raw := c.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := window.BaseURL(raw)
	if err != nil {
		bad("Invalid base_url", err.Error())
	}
	c.base = u
	if c.Token != "" && c.TokenFile != "" {
		bad("Conflicting github credentials", "Set token or token_file, not both.")
	}
	switch c.Include {
	case "", "web", "git", "all":
	default:
		bad("Invalid include", `include is "web", "git" or "all".`)
	}
	if c.PageSize < 0 || c.PageSize > 100 {
		bad("Invalid page_size", "page_size must be between 1 and 100.")
	}
	return diags
}
