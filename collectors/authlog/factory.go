package authlog

import (
	"errors"
	"log/slog"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
)

// Type is the collector type, the first label of its block.
const Type = "authlog"

// NewFactory returns the authlog collector factory.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "Linux auth files (/var/log/auth.log, /var/log/secure): shadow-utils, PAM, sudo and su",
		DecodeConfig: func(body hcl.Body, ctx *hcl.EvalContext) (collectors.Config, hcl.Diagnostics) {
			return DecodeConfig(body, ctx)
		},
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, errors.New("authlog: config is not an authlog config")
			}
			return New(set, c)
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) {
			return NewParser(set, nil)
		},
	}
}

// NewParser returns the stateless parser for `provtrail parse`. A nil cfg
// means every default (zone Local, year inferred).
func NewParser(set collectors.Settings, cfg *Config) (*Parser, error) {
	if cfg == nil {
		cfg = DefaultConfig()
		cfg.Paths = []string{"/dev/stdin"}
	}
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, diags
	}
	return &Parser{opts: settingsOptions(set, cfg)}, nil
}

func settingsOptions(set collectors.Settings, cfg *Config) options {
	o := cfg.options()
	o.hostname = set.Hostname
	o.instance = set.Name
	o.problems = set.Problems
	return o
}

// New returns the collector following cfg.Paths.
func New(set collectors.Settings, cfg *Config) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, diags
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{cfg: cfg, set: set, log: log, opts: settingsOptions(set, cfg), now: time.Now}, nil
}
