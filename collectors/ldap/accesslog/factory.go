package accesslog

import (
	"fmt"

	"github.com/provtrail/provtrail/collectors"
)

// Type is the collector type.
const Type = "ldap_accesslog"

// NewFactory returns the ldap_accesslog factory.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:         Type,
		Description:  "OpenLDAP accesslog (cn=accesslog) via RFC 4533 sync or entryCSN polling; parse reads its LDIF export",
		DecodeConfig: decodeConfig,
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("ldap_accesslog: config is %T, not *accesslog.Config", cfg)
			}
			return New(set, c)
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) {
			return NewParser(set, nil)
		},
	}
}
