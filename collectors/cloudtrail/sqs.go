package cloudtrail

import (
	"errors"

	"github.com/provtrail/provtrail/collectors"
)

func newSQS(set collectors.Settings, cfg *Config, opt Options, m *mapper) (collectors.Collector, error) {
	return nil, errors.New("cloudtrail: mode \"sqs\" is not built yet")
}
