package cloudtrail

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "cloudtrail" collector type.
func NewFactory() collectors.Factory {
	return window.NewFactory(Type,
		"AWS CloudTrail: IAM, Identity Center and Organizations changes (LookupEvents, or trail files via S3 and SQS)",
		DecodeConfig, New, NewParser)
}

// New creates a collector in the configured mode.
func New(set collectors.Settings, cfg *Config, opt Options) (collectors.Collector, error) {
	// opt.HTTPClient goes to the AWS SDK (loadAWS), not through env.
	env, err := window.NewEnv(Type, set, cfg, window.Options{Clock: opt.Clock})
	if err != nil {
		return nil, err
	}
	opt.Clock, set.Logger = env.Clock, env.Logger
	m := &mapper{instance: set.Name, now: env.NowUTC}
	if cfg.Mode == ModeSQS {
		return newSQS(set, cfg, opt, m)
	}
	var fetchers []window.Fetcher
	for _, region := range cfg.regions() {
		awsCfg, err := loadAWS(context.Background(), cfg, region, opt, set.Logger)
		if err != nil {
			return nil, env.Errorf(err)
		}
		api := cloudtrail.NewFromConfig(awsCfg, func(o *cloudtrail.Options) {
			if cfg.EndpointURL != "" {
				o.BaseEndpoint = aws.String(cfg.EndpointURL)
			}
		})
		// The 2 requests/s ceiling is per account and region.
		pacer := window.NewPacer(opt.Clock, cfg.Window.RequestsPerMinute)
		attrs := []types.LookupAttribute{{AttributeKey: types.LookupAttributeKeyReadOnly, AttributeValue: aws.String("false")}}
		if len(cfg.EventSources) > 0 {
			attrs = attrs[:0]
			for _, src := range cfg.EventSources {
				attrs = append(attrs, types.LookupAttribute{AttributeKey: types.LookupAttributeKeyEventSource, AttributeValue: aws.String(src)})
			}
		}
		for _, attr := range attrs {
			fetchers = append(fetchers, &lookupFetcher{region: region, attr: attr, api: api, pacer: pacer, m: m, problems: set.Problems})
		}
	}
	return env.Collector(cfg.Window, window.Chain(fetchers...)), nil
}
