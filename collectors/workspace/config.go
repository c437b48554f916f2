package workspace

import (
	"net/url"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
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

	window.Block
	endpoint *url.URL
}

// DecodeConfig decodes a collector "workspace" block.
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	c := &Config{}
	return window.DecodeBlock(body, ctx, c, &c.Remain, window.DefaultSettings(DefaultRequestsPerMinute))
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	v := c.Check()
	if cloudjson.Email(c.Subject) == "" {
		v.Bad("Invalid subject", "subject is the email of the Workspace admin the service account acts as.")
	}
	if c.CredentialsFile == "" {
		v.Bad("Missing credentials_file", "The Reports API needs a service account with domain-wide delegation.")
	}
	c.endpoint = v.URL("endpoint_url", c.EndpointURL, DefaultEndpoint)
	v.URL("token_url", c.TokenURL, "")
	v.PageSize(c.PageSize, 1000)
	return v.Diagnostics()
}
