package cloudtrail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/provtrail/provtrail/collectors/internal/window"
)

// loadAWS resolves credentials the standard way: the SDK's default chain
// (environment, shared config and credentials files with profile, web
// identity token file, ECS/EC2 roles), optionally assuming role_arn.
func loadAWS(ctx context.Context, c *Config, region string, opt Options, log *slog.Logger) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithLogger(logging.LoggerFunc(func(cl logging.Classification, format string, v ...any) {
			level := slog.LevelDebug
			if cl == logging.Warn {
				level = slog.LevelWarn
			}
			log.Log(ctx, level, "aws sdk: "+fmt.Sprintf(format, v...))
		})),
		config.WithRetryer(func() aws.Retryer { return newRetryer(opt) }),
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if opt.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(opt.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	if c.RoleARN != "" {
		stsClient := sts.NewFromConfig(cfg)
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, c.RoleARN,
			func(o *stscreds.AssumeRoleOptions) {
				o.RoleSessionName = "provtrail"
				if c.ExternalID != "" {
					o.ExternalID = aws.String(c.ExternalID)
				}
			}))
	}
	return cfg, nil
}

// newRetryer is the SDK's standard retryer (it retries ThrottlingException,
// which CloudTrail sends as HTTP 400) without its client-side retry quota,
// which a throttling storm would drain; past its attempts the Engine backs
// off and reads the page again.
func newRetryer(opt Options) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 4
		o.MaxBackoff = 20 * time.Second
		o.RateLimiter = ratelimit.None
		if opt.Backoff != nil {
			o.Backoff = opt.Backoff
		}
	})
}

// Options are what tests replace.
type Options struct {
	Clock      window.Clock
	HTTPClient *http.Client
	// Backoff replaces the SDK retryer's delays.
	Backoff retry.BackoffDelayer
}

// classify turns SDK errors the Engine must treat specially into its
// sentinels.
func classify(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "InvalidNextTokenException":
			return fmt.Errorf("%w: %w", window.ErrPageToken, err)
		case "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown":
			return fmt.Errorf("%w: %w", &window.ThrottledError{Status: 400}, err)
		}
	}
	return err
}
