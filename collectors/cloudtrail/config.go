package cloudtrail

import (
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Modes.
const (
	ModeLookup = "lookup"
	ModeSQS    = "sqs"
)

// Defaults. LookupEvents allows 2 requests a second per account and
// region; CloudTrail delivers "within an average of about 5 minutes ...
// not guaranteed", so windows settle 15 minutes and overlap 30.
const (
	DefaultRequestsPerMinute = 120
	DefaultRegion            = "us-east-1"
	DefaultDedupeHorizon     = 48 * time.Hour
	DefaultVisibilityTimeout = 5 * time.Minute
)

// Config is the collector "cloudtrail" block:
//
//	collector "cloudtrail" "prod" {
//	  mode    = "lookup"                 # LookupEvents (default)
//	  regions = ["us-east-1", "eu-west-1"]  # IAM and STS log to us-east-1
//	  profile = "audit"                  # optional; else the SDK's default chain
//	  role_arn = "arn:aws:iam::123456789012:role/provtrail-reader"  # optional
//	  # event_sources = ["iam.amazonaws.com", "sso.amazonaws.com"]
//	  #   one LookupEvents query per source instead of one for all write
//	  #   events: fewer pages in a busy account, more requests in a quiet one
//	  # endpoint_url = "http://127.0.0.1:4566"   # tests
//	}
//
//	collector "cloudtrail" "org-trail" {
//	  mode      = "sqs"                  # trail files in S3 announced through SQS
//	  region    = "us-east-1"
//	  queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/trail"
//	  validate_digests = true            # check CloudTrail's signed digest chain
//	  # sqs_endpoint_url, s3_endpoint_url, endpoint_url (ListPublicKeys): tests
//	}
type Config struct {
	Mode              string         `hcl:"mode,optional"`
	Regions           []string       `hcl:"regions,optional"`
	EventSources      []string       `hcl:"event_sources,optional"`
	Region            string         `hcl:"region,optional"`
	Profile           string         `hcl:"profile,optional"`
	RoleARN           string         `hcl:"role_arn,optional"`
	ExternalID        string         `hcl:"external_id,optional"`
	EndpointURL       string         `hcl:"endpoint_url,optional"`
	QueueURL          string         `hcl:"queue_url,optional"`
	SQSEndpointURL    string         `hcl:"sqs_endpoint_url,optional"`
	S3EndpointURL     string         `hcl:"s3_endpoint_url,optional"`
	DedupeHorizon     hcl.Expression `hcl:"dedupe_horizon,optional"`
	VisibilityTimeout hcl.Expression `hcl:"visibility_timeout,optional"`
	ValidateDigests   bool           `hcl:"validate_digests,optional"`
	Remain            hcl.Body       `hcl:",remain"`

	window.Block
	dedupe     time.Duration
	visibility time.Duration
}

// DecodeConfig decodes a collector "cloudtrail" block.
func DecodeConfig(body hcl.Body, ctx *hcl.EvalContext) (*Config, hcl.Diagnostics) {
	src := &Config{}
	c, diags := window.DecodeBlock(body, ctx, src, &src.Remain, window.DefaultSettings(DefaultRequestsPerMinute))
	if c == nil {
		return nil, diags
	}
	var ds hcl.Diagnostics
	c.dedupe, ds = hclconfig.Duration(c.DedupeHorizon, ctx, DefaultDedupeHorizon)
	diags = append(diags, ds...)
	c.visibility, ds = hclconfig.Duration(c.VisibilityTimeout, ctx, DefaultVisibilityTimeout)
	diags = append(diags, ds...)
	return c, diags
}

// Validate checks the block.
func (c *Config) Validate() hcl.Diagnostics {
	v := c.Check()
	v.URL("endpoint_url", c.EndpointURL, "")
	v.URL("sqs_endpoint_url", c.SQSEndpointURL, "")
	v.URL("s3_endpoint_url", c.S3EndpointURL, "")
	switch c.Mode {
	case "", ModeLookup:
		if c.QueueURL != "" || c.ValidateDigests {
			v.Bad("queue_url and validate_digests need mode = \"sqs\"", "LookupEvents mode reads the API, not trail files.")
		}
		for _, s := range c.EventSources {
			if !strings.HasSuffix(s, ".amazonaws.com") {
				v.Bad("Invalid event source", s+" is not an event source such as \"iam.amazonaws.com\".")
			}
		}
		for _, r := range c.Regions {
			if r == "" || url.PathEscape(r) != r {
				v.Bad("Invalid region", "regions holds names such as \"us-east-1\".")
			}
		}
	case ModeSQS:
		if c.QueueURL == "" {
			v.Bad("Missing queue_url", "mode = \"sqs\" reads trail file notifications from an SQS queue.")
		} else if _, err := url.Parse(c.QueueURL); err != nil {
			v.Bad("Invalid queue_url", err.Error())
		}
		if c.visibility < 30*time.Second || c.visibility > 12*time.Hour {
			v.Bad("Invalid visibility_timeout", "visibility_timeout must be between 30s and 12h.")
		}
	default:
		v.Bad("Invalid mode", `mode is "lookup" or "sqs".`)
	}
	return v.Diagnostics()
}

func (c *Config) regions() []string {
	if len(c.Regions) == 0 {
		return []string{DefaultRegion}
	}
	return c.Regions
}
