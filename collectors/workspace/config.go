package workspace

import (
	"net/url"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults. The Reports API quota is far above what one admin log needs;
// 60 requests a minute leaves room for the customer's other tools.
const (
	DefaultRequestsPerMinute = 60
	DefaultEndpoint          = "https://admin.googleapis.com"
	DefaultPageSize          = 1000
	Scope                    = "https://www.googleapis.com/auth/admin.reports.audit.readonly"
)

// Config is the collector "workspace" block:
//
//	collector "workspace" "example" {
//	  credentials_file = "/etc/provtrail/workspace-sa.json"   # service account with domain-wide delegation
//	  subject          = "reporting-admin@example.com"        # the admin it acts as
//	  # customer_id = "C01abcde"; endpoint_url, token_url: tests
//	}
type Config struct {
	CredentialsFile string   `hcl:"credentials_file"`
	Subject         string   `hcl:"subject"`
	CustomerID      string   `hcl:"customer_id,optional"`
	TokenURL        string   `hcl:"token_url,optional"`
	EndpointURL     string   `hcl:"endpoint_url,optional"`
	PageSize        int      `hcl:"page_size,optional"`
	Remain          hcl.Body `hcl:",remain"`

	Window   window.Settings
	endpoint *url.URL
	rng      hcl.Range
}

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

// DecodeConfig decodes a collector "workspace" block.
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
	if cloudjson.Email(c.Subject) == "" {
		bad("Invalid subject", "subject is the email of the Workspace admin the service account acts as.")
	}
	if c.CredentialsFile == "" {
		bad("Missing credentials_file", "The Reports API needs a service account with domain-wide delegation.")
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
	if c.PageSize < 0 || c.PageSize > 1000 {
		bad("Invalid page_size", "page_size must be between 1 and 1000.")
	}
	return diags
}
