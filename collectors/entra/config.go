package entra

import (
	"net/url"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors/internal/window"
)

// Defaults. Graph limits identity and access reports to 5 requests per 10
// seconds per app and tenant; audit events are documented to arrive within
// minutes (p99 5 min on the old latency page), so windows settle 15 min.
const (
	DefaultRequestsPerMinute    = 30
	DefaultARMRequestsPerMinute = 120
	DefaultPageSize             = 500
	DefaultGraphURL             = "https://graph.microsoft.com"
	DefaultAuthorityURL         = "https://login.microsoftonline.com"
	DefaultManagementURL        = "https://management.azure.com"
	// The variables azidentity's EnvironmentCredential reads.
	TenantEnv = "AZURE_TENANT_ID"
	ClientEnv = "AZURE_CLIENT_ID"
	SecretEnv = "AZURE_CLIENT_SECRET"
)

// Config is the collector "entra" block:
//
//	collector "entra" "contoso" {
//	  tenant_id          = "00000000-0000-0000-0000-000000000000"   # or $AZURE_TENANT_ID
//	  client_id          = "11111111-1111-1111-1111-111111111111"   # or $AZURE_CLIENT_ID
//	  client_secret_file = "/etc/provtrail/entra.secret"            # or client_secret, or $AZURE_CLIENT_SECRET
//	  activity_log_subscriptions = ["22222222-2222-2222-2222-222222222222"]  # Azure RBAC role assignments
//	  # graph_url, authority_url, management_url: endpoints (tests, sovereign clouds)
//	}
type Config struct {
	TenantID                 string   `hcl:"tenant_id,optional"`
	ClientID                 string   `hcl:"client_id,optional"`
	ClientSecret             string   `hcl:"client_secret,optional"`
	ClientSecretFile         string   `hcl:"client_secret_file,optional"`
	GraphURL                 string   `hcl:"graph_url,optional"`
	AuthorityURL             string   `hcl:"authority_url,optional"`
	ManagementURL            string   `hcl:"management_url,optional"`
	ActivityLogSubscriptions []string `hcl:"activity_log_subscriptions,optional"`
	PageSize                 int      `hcl:"page_size,optional"`
	Remain                   hcl.Body `hcl:",remain"`

	window.Block
	graph, authority, manage *url.URL
}

// DecodeConfig decodes a collector "entra" block.
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	c := &Config{}
	return window.DecodeBlock(body, ctx, c, &c.Remain, window.DefaultSettings(DefaultRequestsPerMinute))
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	v := c.Check()
	c.graph = v.URL("graph_url", c.GraphURL, DefaultGraphURL)
	c.authority = v.URL("authority_url", c.AuthorityURL, DefaultAuthorityURL)
	c.manage = v.URL("management_url", c.ManagementURL, DefaultManagementURL)
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		v.Bad("Conflicting entra credentials", "Set client_secret or client_secret_file, not both.")
	}
	for _, s := range c.ActivityLogSubscriptions {
		if s == "" || len(s) > 64 || url.PathEscape(s) != s {
			v.Bad("Invalid subscription id", "activity_log_subscriptions holds subscription GUIDs.")
		}
	}
	v.PageSize(c.PageSize, 1000)
	return v.Diagnostics()
}
