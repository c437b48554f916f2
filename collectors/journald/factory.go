package journald

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
)

// Type is the collector type of this package.
const Type = "journald"

// NewFactory returns the factory of the journald collector.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "account changes in the systemd journal (journalctl -o json)",
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
				return nil, fmt.Errorf("journald: config is %T, want *journald.Config", cfg)
			}
			return New(set, c)
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) {
			return NewParser(set, nil)
		},
	}
}

// NewParser returns the parser of recorded `journalctl -o json` output. A
// nil cfg means the defaults.
func NewParser(set collectors.Settings, cfg *Config) (*Parser, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	p, err := newProcessor(set, cfg.PrivilegedGroups)
	if err != nil {
		return nil, err
	}
	return &Parser{p: p}, nil
}
