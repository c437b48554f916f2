package changelog

import (
	"fmt"

	"github.com/provtrail/provtrail/collectors"
)

// Type is the collector type.
const Type = "ldap_changelog"

// NewFactory returns the ldap_changelog factory.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:         Type,
		Description:  "389-DS / Red Hat DS / FreeIPA retro changelog (cn=changelog) polled by changeNumber; parse reads its LDIF export",
		DecodeConfig: decodeConfig,
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("ldap_changelog: config is %T, not *changelog.Config", cfg)
			}
			return New(set, c)
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) {
			return NewParser(set, nil)
		},
	}
}
