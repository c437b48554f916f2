package gcpaudit

import (
	"net/url"
	"regexp"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults. entries.list allows 60 requests a minute per project.
const (
	DefaultRequestsPerMinute = 60
	DefaultEndpoint          = "https://logging.googleapis.com"
	DefaultPageSize          = 1000
	Scope                    = "https://www.googleapis.com/auth/logging.read"
)

// Config is the collector "gcpaudit" block:
//
//	collector "gcpaudit" "org" {
//	  resource_names   = ["organizations/123456789012", "projects/my-project"]
//	  credentials_file = "/etc/provtrail/gcp-sa.json"   # else Application Default Credentials
//	  # filter       = "protoPayload.serviceName=\"iam.googleapis.com\""  # ANDed with the built-in filter
//	  # endpoint_url = "https://logging.googleapis.com"; token_url: tests
//	}
type Config struct {
	ResourceNames   []string `hcl:"resource_names"`
	CredentialsFile string   `hcl:"credentials_file,optional"`
	TokenURL        string   `hcl:"token_url,optional"`
	EndpointURL     string   `hcl:"endpoint_url,optional"`
	Filter          string   `hcl:"filter,optional"`
	PageSize        int      `hcl:"page_size,optional"`
	Remain          hcl.Body `hcl:",remain"`

	Window   window.Settings
	endpoint *url.URL
	rng      hcl.Range
}

var resourceName = regexp.MustCompile(`^(projects|organizations|folders|billingAccounts)/[A-Za-z0-9._:-]+$`)

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

// DecodeConfig decodes a collector "gcpaudit" block.
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
	if len(c.ResourceNames) == 0 || len(c.ResourceNames) > 100 {
		bad("Invalid resource_names", "Name 1 to 100 resources such as \"projects/my-project\" or \"organizations/123\".")
	}
	for _, r := range c.ResourceNames {
		if !resourceName.MatchString(r) {
			bad("Invalid resource name", r+" is not projects/P, organizations/O, folders/F or billingAccounts/B.")
		}
	}
	raw := c.EndpointURL
	if raw == "" {
		raw = DefaultEndpoint
	}
	u, err := window.BaseURL(raw)
	if err != nil {
		bad("Invalid endpoint_url", err.Error())
	}
	c.endpoint = u
	if c.TokenURL != "" {
		if _, err := window.BaseURL(c.TokenURL); err != nil {
			bad("Invalid token_url", err.Error())
		}
	}
	if len(c.Filter) > 10000 {
		bad("Invalid filter", "filter is longer than 10,000 characters (Logging allows 20,000 in all).")
	}
	if c.PageSize < 0 || c.PageSize > 1000 {
		bad("Invalid page_size", "page_size must be between 1 and 1000.")
	}
	return diags
}
