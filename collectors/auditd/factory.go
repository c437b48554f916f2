package auditd

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
)

// Type is the collector type of this package.
const Type = "auditd"

// NewFactory returns the factory of the auditd collector, which follows
// audit.log with the shared tailer (collectors/internal/tail).
func NewFactory() collectors.Factory { return NewFactoryWithFollower(nil) }

// NewFactoryWithFollower returns the factory of the auditd collector
// reading audit.log through f (nil: the shared tailer).
func NewFactoryWithFollower(f LineFollower) collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "account-management records of the Linux audit log",
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
				return nil, fmt.Errorf("auditd: config is %T, want *auditd.Config", cfg)
			}
			return New(set, c, f)
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) {
			return NewParser(set, nil), nil
		},
	}
}

// NewParser returns the stateless audit.log parser. A nil cfg means the
// defaults.
func NewParser(set collectors.Settings, cfg *Config) *Parser {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	return &Parser{privileged: cfg.privileged(), hostname: set.Hostname, instance: set.Name, problems: set.Problems}
}
