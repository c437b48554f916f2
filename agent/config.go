package agent

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults for agent.hcl.
const (
	DefaultStateDir          = "/var/lib/provtrail"
	DefaultBatchMaxEvents    = 500
	DefaultBatchMaxWait      = time.Second
	DefaultBatchMaxBytes     = 4 << 20
	DefaultSpoolMaxBytes     = 1 << 30
	DefaultHeartbeatInterval = time.Minute
	DefaultForwardTimeout    = 30 * time.Second
	// DefaultProofInterval is how often inclusion proofs are fetched.
	DefaultProofInterval = 30 * time.Second
	DefaultAudience      = "provtrail"
	DefaultCompression   = "zstd"
)

// Config is the agent's runtime configuration, built once from agent.hcl.
type Config struct {
	// Path is the file the configuration was read from.
	Path       string
	Agent      AgentSettings
	Signer     SignerSettings
	Forward    ForwardSettings
	Metrics    MetricsSettings
	Collectors []CollectorConfig
}

// AgentSettings is the agent block.
type AgentSettings struct {
	ID       string
	StateDir string
	// Hostname overrides os.Hostname() in events' origin.host.
	Hostname          string
	HeartbeatInterval time.Duration
}

// SignerSettings is the signer block: the agent's long-term identity key.
type SignerSettings struct {
	// KeyFile is a PEM private key (encrypted or not); KeyRef a sigstore
	// KMS URI. Exactly one is set.
	KeyFile        string
	KeyRef         string
	PassphraseFile string
	PassphraseEnv  string
}

// ForwardSettings is the forward block: where batches go and how big they are.
type ForwardSettings struct {
	URL            string
	Audience       string
	CAFile         string
	CertFile       string
	KeyFile        string
	BatchMaxEvents int
	BatchMaxWait   time.Duration
	BatchMaxBytes  int64
	SpoolMaxBytes  int64
	Compression    string
	Timeout        time.Duration
	// LogKeyFile is central's log checkpoint key (a note verifier key,
	// central's DATA_DIR/log/log.vkey); with it the agent fetches and
	// checks the inclusion proof of every acknowledged batch.
	LogKeyFile    string
	ProofInterval time.Duration
}

// MetricsSettings is the metrics block; an empty Listen disables the
// metrics and health endpoint.
type MetricsSettings struct {
	Listen string
}

// CollectorConfig is one collector block, decoded by its factory.
type CollectorConfig struct {
	Type, Name string
	Config     collectors.Config
	// DefRange is where the block starts, for diagnostics.
	DefRange hcl.Range
}

type agentBlock struct {
	ID                string         `hcl:"id"`
	StateDir          *string        `hcl:"state_dir,optional"`
	Hostname          *string        `hcl:"hostname,optional"`
	HeartbeatInterval hcl.Expression `hcl:"heartbeat_interval,optional"`
}

type signerBlock struct {
	KeyFile        *string `hcl:"key_file,optional"`
	KeyRef         *string `hcl:"key_ref,optional"`
	PassphraseFile *string `hcl:"passphrase_file,optional"`
	PassphraseEnv  *string `hcl:"passphrase_env,optional"`
}

type forwardBlock struct {
	URL            string         `hcl:"url"`
	Audience       *string        `hcl:"audience,optional"`
	CAFile         *string        `hcl:"ca_file,optional"`
	CertFile       *string        `hcl:"cert_file,optional"`
	KeyFile        *string        `hcl:"key_file,optional"`
	BatchMaxEvents *int           `hcl:"batch_max_events,optional"`
	BatchMaxWait   hcl.Expression `hcl:"batch_max_wait,optional"`
	BatchMaxBytes  hcl.Expression `hcl:"batch_max_bytes,optional"`
	SpoolMaxBytes  hcl.Expression `hcl:"spool_max_bytes,optional"`
	Compression    *string        `hcl:"compression,optional"`
	Timeout        hcl.Expression `hcl:"timeout,optional"`
	LogKeyFile     *string        `hcl:"log_key_file,optional"`
	ProofInterval  hcl.Expression `hcl:"proof_interval,optional"`
}

type metricsBlock struct {
	Listen string `hcl:"listen"`
}

var agentFileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "agent"},
		{Type: "signer"},
		{Type: "forward"},
		{Type: "metrics"},
		{Type: "collector", LabelNames: []string{"type", "name"}},
	},
}

// LoadConfig reads and checks agent.hcl, decoding each collector block with
// its factory from reg. It returns every problem found, not just the first.
func LoadConfig(path string, reg *collectors.Registry) (*Config, hcl.Diagnostics) {
	f, diags := hclconfig.Parse(path)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg, more := DecodeConfig(f.Body, path, reg)
	return cfg, append(diags, more...)
}

// DecodeConfig decodes an already parsed agent.hcl body; path is used for
// resolving relative file() arguments and for Config.Path.
func DecodeConfig(body hcl.Body, path string, reg *collectors.Registry) (*Config, hcl.Diagnostics) {
	baseDir := filepath.Dir(path)
	ctx := hclconfig.EvalContext(baseDir, nil)
	content, diags := body.Content(agentFileSchema)
	cfg := &Config{Path: path}
	seen := hclconfig.Singletons{}
	names := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "agent":
			if seen.Once(b, &diags) {
				diags = append(diags, decodeAgent(b, ctx, &cfg.Agent)...)
			}
		case "signer":
			if seen.Once(b, &diags) {
				diags = append(diags, decodeSigner(b, ctx, baseDir, &cfg.Signer)...)
			}
		case "forward":
			if seen.Once(b, &diags) {
				diags = append(diags, decodeForward(b, ctx, baseDir, &cfg.Forward)...)
			}
		case "metrics":
			if seen.Once(b, &diags) {
				var mb metricsBlock
				diags = append(diags, gohcl.DecodeBody(b.Body, ctx, &mb)...)
				cfg.Metrics.Listen = mb.Listen
			}
		case "collector":
			typ, name := b.Labels[0], b.Labels[1]
			key := typ + "." + name
			if prev, dup := names[key]; dup {
				diags = append(diags, hclconfig.Error(b.LabelRanges[1], "Duplicate collector",
					fmt.Sprintf("collector %q %q is already defined at %s.", typ, name, prev)))
				continue
			}
			names[key] = b.DefRange
			fac, err := reg.Lookup(typ)
			if err != nil {
				diags = append(diags, hclconfig.Error(b.LabelRanges[0], "Unknown collector type",
					fmt.Sprintf("%q is not a collector type; known types: %v.", typ, reg.Types())))
				continue
			}
			cc, cdiags := fac.DecodeConfig(b.Body, ctx)
			diags = append(diags, cdiags...)
			if cdiags.HasErrors() || cc == nil {
				continue
			}
			diags = append(diags, cc.Validate()...)
			cfg.Collectors = append(cfg.Collectors, CollectorConfig{Type: typ, Name: name, Config: cc, DefRange: b.DefRange})
		}
	}
	diags = append(diags, seen.Require(body, "agent", "agent", "signer", "forward")...)
	if len(cfg.Collectors) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "No collectors",
			Detail:   "The agent will only send heartbeats.",
			Subject:  body.MissingItemRange().Ptr(),
		})
	}
	return cfg, diags
}

func decodeAgent(b *hcl.Block, ctx *hcl.EvalContext, out *AgentSettings) hcl.Diagnostics {
	var ab agentBlock
	diags := gohcl.DecodeBody(b.Body, ctx, &ab)
	if diags.HasErrors() {
		return diags
	}
	out.ID = ab.ID
	if ab.ID == "" || len(ab.ID) > 128 {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid agent id", "agent.id must be 1 to 128 characters."))
	}
	out.StateDir = hclconfig.Deref(ab.StateDir, DefaultStateDir)
	out.Hostname = hclconfig.Deref(ab.Hostname, "")
	var d hcl.Diagnostics
	out.HeartbeatInterval, d = hclconfig.Duration(ab.HeartbeatInterval, ctx, DefaultHeartbeatInterval)
	return append(diags, d...)
}

func decodeSigner(b *hcl.Block, ctx *hcl.EvalContext, baseDir string, out *SignerSettings) hcl.Diagnostics {
	var sb signerBlock
	diags := gohcl.DecodeBody(b.Body, ctx, &sb)
	if diags.HasErrors() {
		return diags
	}
	out.KeyFile = hclconfig.Path(baseDir, hclconfig.Deref(sb.KeyFile, ""))
	out.KeyRef = hclconfig.Deref(sb.KeyRef, "")
	out.PassphraseFile = hclconfig.Path(baseDir, hclconfig.Deref(sb.PassphraseFile, ""))
	out.PassphraseEnv = hclconfig.Deref(sb.PassphraseEnv, "")
	if (out.KeyFile == "") == (out.KeyRef == "") {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid signer block",
			"Set exactly one of key_file (a PEM file) or key_ref (a KMS URI such as awskms://...)."))
	}
	if out.PassphraseFile != "" && out.PassphraseEnv != "" {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid signer block",
			"Set at most one of passphrase_file and passphrase_env."))
	}
	return diags
}

func decodeForward(b *hcl.Block, ctx *hcl.EvalContext, baseDir string, out *ForwardSettings) hcl.Diagnostics {
	var fb forwardBlock
	diags := gohcl.DecodeBody(b.Body, ctx, &fb)
	if diags.HasErrors() {
		return diags
	}
	out.URL = fb.URL
	if u, err := url.Parse(fb.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid forward.url",
			fmt.Sprintf("%q is not an https:// URL of the central service.", fb.URL)))
	}
	out.Audience = hclconfig.Deref(fb.Audience, DefaultAudience)
	out.CAFile = hclconfig.Path(baseDir, hclconfig.Deref(fb.CAFile, ""))
	out.CertFile = hclconfig.Path(baseDir, hclconfig.Deref(fb.CertFile, ""))
	out.KeyFile = hclconfig.Path(baseDir, hclconfig.Deref(fb.KeyFile, ""))
	if (out.CertFile == "") != (out.KeyFile == "") {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid forward block",
			"cert_file and key_file (the client certificate) go together."))
	}
	out.BatchMaxEvents = DefaultBatchMaxEvents
	if fb.BatchMaxEvents != nil {
		out.BatchMaxEvents = *fb.BatchMaxEvents
		if out.BatchMaxEvents < 1 || out.BatchMaxEvents > 100000 {
			diags = append(diags, hclconfig.Error(b.DefRange, "Invalid forward.batch_max_events",
				"batch_max_events must be between 1 and 100000."))
		}
	}
	var d hcl.Diagnostics
	out.BatchMaxWait, d = hclconfig.Duration(fb.BatchMaxWait, ctx, DefaultBatchMaxWait)
	diags = append(diags, d...)
	out.BatchMaxBytes, d = hclconfig.Size(fb.BatchMaxBytes, ctx, DefaultBatchMaxBytes)
	diags = append(diags, d...)
	out.SpoolMaxBytes, d = hclconfig.Size(fb.SpoolMaxBytes, ctx, DefaultSpoolMaxBytes)
	diags = append(diags, d...)
	out.Timeout, d = hclconfig.Duration(fb.Timeout, ctx, DefaultForwardTimeout)
	diags = append(diags, d...)
	out.LogKeyFile = hclconfig.Path(baseDir, hclconfig.Deref(fb.LogKeyFile, ""))
	out.ProofInterval, d = hclconfig.Duration(fb.ProofInterval, ctx, DefaultProofInterval)
	diags = append(diags, d...)
	if out.SpoolMaxBytes < 2*out.BatchMaxBytes {
		diags = append(diags, hclconfig.Error(fb.SpoolMaxBytes.Range(), "Invalid forward.spool_max_bytes",
			"spool_max_bytes must hold at least two batches (2 x batch_max_bytes)."))
	}
	out.Compression = hclconfig.Deref(fb.Compression, DefaultCompression)
	switch out.Compression {
	case "zstd", "gzip", "none":
	default:
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid forward.compression",
			fmt.Sprintf("%q is not one of zstd, gzip or none.", out.Compression)))
	}
	return diags
}
