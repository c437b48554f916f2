package cloudtrail

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "cloudtrail" collector type.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "AWS CloudTrail: IAM, Identity Center and Organizations changes (LookupEvents, or trail files via S3 and SQS)",
		DecodeConfig: func(body hcl.Body, ctx *hcl.EvalContext) (collectors.Config, hcl.Diagnostics) {
			c, diags := DecodeConfig(body, ctx)
			if c == nil {
				return nil, diags
			}
			return c, diags
		},
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("cloudtrail: config is %T", cfg)
			}
			return New(set, c, Options{})
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) { return NewParser(set), nil },
	}
}

// New creates a collector in the configured mode.
func New(set collectors.Settings, cfg *Config, opt Options) (collectors.Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, fmt.Errorf("cloudtrail %s: %s", set.Name, diags.Error())
	}
	if opt.Clock == nil {
		opt.Clock = window.SystemClock{}
	}
	if set.Logger == nil {
		set.Logger = slog.New(slog.DiscardHandler)
	}
	m := &mapper{instance: set.Name, now: func() time.Time { return opt.Clock.Now().UTC() }}
	if cfg.Mode == ModeSQS {
		return newSQS(set, cfg, opt, m)
	}
	var fetchers []window.Fetcher
	for _, region := range cfg.regions() {
		awsCfg, err := loadAWS(context.Background(), cfg, region, opt, set.Logger)
		if err != nil {
			return nil, fmt.Errorf("cloudtrail %s: %w", set.Name, err)
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
	return &lookupCollector{engine: &window.Engine{
		Config:   cfg.Window.Resolve(opt.Clock.Now()),
		Fetcher:  window.Chain(fetchers...),
		Clock:    opt.Clock,
		StateDir: set.StateDir,
		Name:     Type + "/" + set.Name,
		Logger:   set.Logger,
		Problems: set.Problems,
	}}, nil
}

type lookupCollector struct {
	engine *window.Engine
}

func (c *lookupCollector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	return c.engine.Run(ctx, start, out)
}
