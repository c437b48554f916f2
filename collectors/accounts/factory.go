package accounts

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
)

// Type is the collector type of this package.
const Type = "accounts"

// NewFactory returns the factory of the accounts collector.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "diffs snapshots of passwd, shadow, group, gshadow and sudoers",
		DecodeConfig: func(body hcl.Body, ctx *hcl.EvalContext) (collectors.Config, hcl.Diagnostics) {
			cfg, diags := decodeConfig(body, ctx)
			if cfg == nil {
				return nil, diags
			}
			return cfg, diags
		},
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("accounts: config is %T, want *accounts.Config", cfg)
			}
			if diags := c.Validate(); diags.HasErrors() {
				return nil, fmt.Errorf("accounts: %s", diags.Error())
			}
			return New(set, c), nil
		},
	}
}
