package gcpaudit

import (
	"net/url"
	"regexp"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors/internal/window"
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

	window.Block
	endpoint *url.URL
}

var resourceName = regexp.MustCompile(`^(projects|organizations|folders|billingAccounts)/[A-Za-z0-9._:-]+$`)

// DecodeConfig decodes a collector "gcpaudit" block.
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	c := &Config{}
	return window.DecodeBlock(body, ctx, c, &c.Remain, window.DefaultSettings(DefaultRequestsPerMinute))
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	v := c.Check()
	if len(c.ResourceNames) == 0 || len(c.ResourceNames) > 100 {
		v.Bad("Invalid resource_names", "Name 1 to 100 resources such as \"projects/my-project\" or \"organizations/123\".")
	}
	for _, r := range c.ResourceNames {
		if !resourceName.MatchString(r) {
			v.Bad("Invalid resource name", r+" is not projects/P, organizations/O, folders/F or billingAccounts/B.")
		}
	}
	c.endpoint = v.URL("endpoint_url", c.EndpointURL, DefaultEndpoint)
	v.URL("token_url", c.TokenURL, "")
	if len(c.Filter) > 10000 {
		v.Bad("Invalid filter", "filter is longer than 10,000 characters (Logging allows 20,000 in all).")
	}
	v.PageSize(c.PageSize, 1000)
	return v.Diagnostics()
}
