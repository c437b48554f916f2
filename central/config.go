package central

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Defaults for central.hcl.
const (
	DefaultListen          = "127.0.0.1:7443"
	DefaultDataDir         = "/var/lib/provtrail-central"
	DefaultAudience        = "provtrail"
	DefaultLogOrigin       = "provtrail.local/log"
	DefaultMaxRequestBytes = 16 << 20
	DefaultMaxBodyBytes    = 64 << 20
	DefaultMaxConcurrent   = 64
	DefaultReadTimeout     = 30 * time.Second
	DefaultGapTimeout      = 10 * time.Minute
	// DefaultHeartbeatInterval is the agent's default heartbeat_interval:
	// central assumes it for agents whose block does not say otherwise.
	DefaultHeartbeatInterval = time.Minute
	// DefaultSilenceMargin is how long past its heartbeat interval an
	// agent may stay quiet before builtin.silent_agent fires.
	DefaultSilenceMargin = time.Minute
)

// Config is central's runtime configuration, built once from central.hcl.
type Config struct {
	// Path is the file the configuration was read from.
	Path      string
	Central   Settings
	TLS       TLSSettings
	LogSigner LogSignerSettings
	// Agents are the agents enrolled by configuration, keyed by id.
	Agents []AgentEntry
	// Alerts holds the alert rules, notifiers and variables.
	Alerts *alerts.Config
	// Body is the whole parsed file.
	Body hcl.Body
	// EvalContext evaluates expressions in the file (env(), file()).
	EvalContext *hcl.EvalContext
}

// Settings is the central block.
type Settings struct {
	Listen  string
	DataDir string
	// Audience is the id batches must be addressed to.
	Audience string
	// Dev allows plain HTTP, only on a loopback listen address.
	Dev             bool
	MaxRequestBytes int64
	// MaxBodyBytes bounds a batch body after decompression.
	MaxBodyBytes  int64
	MaxConcurrent int
	ReadTimeout   time.Duration
	// GapTimeout is how long a chain gap may stay open before it alerts.
	GapTimeout time.Duration
	// HeartbeatInterval is the heartbeat interval assumed for agents that
	// do not set their own (token-enrolled agents, agent blocks without
	// heartbeat_interval).
	HeartbeatInterval time.Duration
	// SilenceMargin is added to an agent's heartbeat interval before it
	// is reported silent.
	SilenceMargin time.Duration
	// Postgres, when set, is a PostgreSQL connection string used instead of
	// the embedded SQLite store.
	Postgres string
}

// TLSSettings is the tls block.
type TLSSettings struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, enables client certificate verification.
	ClientCAFile      string
	RequireClientCert bool
}

// LogSignerSettings is the log_signer block: the key that signs
// transparency-log checkpoints.
type LogSignerSettings struct {
	KeyFile        string
	PassphraseFile string
	PassphraseEnv  string
	// Origin is the log's name in its checkpoints (C2SP tlog-checkpoint).
	Origin string
}

// AgentEntry is one agent "ID" block.
type AgentEntry struct {
	ID            string
	PublicKeyFile string
	// Revoked agents' batches are rejected; their history stays.
	Revoked bool
	// HeartbeatInterval is the agent's heartbeat_interval (zero: the
	// central block's default). Central reports the agent silent when no
	// batch arrives for this long plus the silence margin.
	HeartbeatInterval time.Duration
	DefRange          hcl.Range
}

type centralBlock struct {
	Listen          *string        `hcl:"listen,optional"`
	DataDir         *string        `hcl:"data_dir,optional"`
	Audience        *string        `hcl:"audience,optional"`
	Dev             *bool          `hcl:"dev,optional"`
	MaxRequestBytes hcl.Expression `hcl:"max_request_bytes,optional"`
	MaxBodyBytes    hcl.Expression `hcl:"max_body_bytes,optional"`
	MaxConcurrent   *int           `hcl:"max_concurrent_requests,optional"`
	ReadTimeout     hcl.Expression `hcl:"read_timeout,optional"`
	GapTimeout      hcl.Expression `hcl:"gap_timeout,optional"`
	Heartbeat       hcl.Expression `hcl:"heartbeat_interval,optional"`
	SilenceMargin   hcl.Expression `hcl:"silence_margin,optional"`
	Postgres        *string        `hcl:"postgres,optional"`
}

type tlsBlock struct {
	CertFile          string  `hcl:"cert_file"`
	KeyFile           string  `hcl:"key_file"`
	ClientCAFile      *string `hcl:"client_ca_file,optional"`
	RequireClientCert *bool   `hcl:"require_client_cert,optional"`
}

type logSignerBlock struct {
	KeyFile        string  `hcl:"key_file"`
	PassphraseFile *string `hcl:"passphrase_file,optional"`
	PassphraseEnv  *string `hcl:"passphrase_env,optional"`
	Origin         *string `hcl:"origin,optional"`
}

type agentBlock struct {
	PublicKeyFile     string         `hcl:"public_key_file"`
	Revoked           *bool          `hcl:"revoked,optional"`
	HeartbeatInterval hcl.Expression `hcl:"heartbeat_interval,optional"`
}

// FileSchema lists central.hcl's top-level blocks.
var FileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "central"},
		{Type: "tls"},
		{Type: "log_signer"},
		{Type: "agent", LabelNames: []string{"id"}},
		{Type: "variables"},
		{Type: "alert", LabelNames: []string{"name"}},
		{Type: "notifier", LabelNames: []string{"type", "name"}},
	},
}

// LoadConfig reads and checks central.hcl, returning every problem found.
func LoadConfig(path string) (*Config, hcl.Diagnostics) {
	f, diags := hclconfig.Parse(path)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg, more := DecodeConfig(f.Body, path)
	return cfg, append(diags, more...)
}

// DecodeConfig decodes an already parsed central.hcl body.
func DecodeConfig(body hcl.Body, path string) (*Config, hcl.Diagnostics) {
	baseDir := filepath.Dir(path)
	ctx := hclconfig.EvalContext(baseDir, nil)
	content, diags := body.Content(FileSchema)
	cfg := &Config{Path: path, Body: body, EvalContext: ctx}
	seen := hclconfig.Singletons{}
	agentIDs := map[string]hcl.Range{}
	for _, b := range content.Blocks {
		switch b.Type {
		case "central":
			if seen.Once(b, &diags) {
				diags = append(diags, decodeCentral(b, ctx, &cfg.Central)...)
			}
		case "tls":
			if seen.Once(b, &diags) {
				var tb tlsBlock
				d := gohcl.DecodeBody(b.Body, ctx, &tb)
				diags = append(diags, d...)
				if !d.HasErrors() {
					cfg.TLS = TLSSettings{
						CertFile:          hclconfig.Path(baseDir, tb.CertFile),
						KeyFile:           hclconfig.Path(baseDir, tb.KeyFile),
						ClientCAFile:      hclconfig.Path(baseDir, hclconfig.Deref(tb.ClientCAFile, "")),
						RequireClientCert: hclconfig.Deref(tb.RequireClientCert, false),
					}
					if cfg.TLS.RequireClientCert && cfg.TLS.ClientCAFile == "" {
						diags = append(diags, hclconfig.Error(b.DefRange, "Invalid tls block",
							"require_client_cert needs client_ca_file."))
					}
				}
			}
		case "log_signer":
			if seen.Once(b, &diags) {
				var lb logSignerBlock
				d := gohcl.DecodeBody(b.Body, ctx, &lb)
				diags = append(diags, d...)
				if !d.HasErrors() {
					cfg.LogSigner = LogSignerSettings{
						KeyFile:        hclconfig.Path(baseDir, lb.KeyFile),
						PassphraseFile: hclconfig.Path(baseDir, hclconfig.Deref(lb.PassphraseFile, "")),
						PassphraseEnv:  hclconfig.Deref(lb.PassphraseEnv, ""),
						Origin:         hclconfig.Deref(lb.Origin, DefaultLogOrigin),
					}
					if lb.PassphraseFile != nil && lb.PassphraseEnv != nil {
						diags = append(diags, hclconfig.Error(b.DefRange, "Invalid log_signer block",
							"Set at most one of passphrase_file and passphrase_env."))
					}
				}
			}
		case "agent":
			id := b.Labels[0]
			if prev, dup := agentIDs[id]; dup {
				diags = append(diags, hclconfig.Error(b.LabelRanges[0], "Duplicate agent",
					fmt.Sprintf("agent %q is already defined at %s.", id, prev)))
				continue
			}
			agentIDs[id] = b.DefRange
			var ab agentBlock
			d := gohcl.DecodeBody(b.Body, ctx, &ab)
			diags = append(diags, d...)
			if !d.HasErrors() {
				hb, d := hclconfig.Duration(ab.HeartbeatInterval, ctx, 0)
				diags = append(diags, d...)
				cfg.Agents = append(cfg.Agents, AgentEntry{
					ID: id, PublicKeyFile: hclconfig.Path(baseDir, ab.PublicKeyFile),
					Revoked: hclconfig.Deref(ab.Revoked, false), HeartbeatInterval: hb, DefRange: b.DefRange,
				})
			}
		}
	}
	alertCfg, adiags := alerts.DecodeConfig(content.Blocks, ctx)
	diags = append(diags, adiags...)
	cfg.Alerts = alertCfg
	diags = append(diags, seen.Require(body, "central", "central")...)
	if seen["log_signer"] == nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing log_signer block",
			Detail: "central needs a log_signer key to sign transparency-log checkpoints.", Subject: body.MissingItemRange().Ptr()})
	}
	if seen["tls"] == nil && !cfg.Central.Dev {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing tls block",
			Detail:  "TLS is required outside dev mode (central { dev = true } allows plain HTTP on loopback only).",
			Subject: body.MissingItemRange().Ptr()})
	}
	if seen["tls"] == nil && cfg.Central.Dev && cfg.Central.Listen != "" {
		if host, _, err := net.SplitHostPort(cfg.Central.Listen); err == nil {
			if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
				diags = append(diags, hclconfig.Error(seen["central"].DefRange, "Plain HTTP on a non-loopback address",
					fmt.Sprintf("listen = %q: without a tls block central may only listen on a loopback address.", cfg.Central.Listen)))
			}
		}
	}
	return cfg, diags
}

func decodeCentral(b *hcl.Block, ctx *hcl.EvalContext, out *Settings) hcl.Diagnostics {
	var cb centralBlock
	diags := gohcl.DecodeBody(b.Body, ctx, &cb)
	if diags.HasErrors() {
		return diags
	}
	out.Listen = hclconfig.Deref(cb.Listen, DefaultListen)
	if _, _, err := net.SplitHostPort(out.Listen); err != nil {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid central.listen",
			fmt.Sprintf("%q is not host:port.", out.Listen)))
	}
	out.DataDir = hclconfig.Deref(cb.DataDir, DefaultDataDir)
	out.Audience = hclconfig.Deref(cb.Audience, DefaultAudience)
	out.Dev = hclconfig.Deref(cb.Dev, false)
	out.Postgres = hclconfig.Deref(cb.Postgres, "")
	out.MaxConcurrent = hclconfig.Deref(cb.MaxConcurrent, DefaultMaxConcurrent)
	if out.MaxConcurrent < 1 {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid central.max_concurrent_requests", "Must be at least 1."))
	}
	var d hcl.Diagnostics
	out.MaxRequestBytes, d = hclconfig.Size(cb.MaxRequestBytes, ctx, DefaultMaxRequestBytes)
	diags = append(diags, d...)
	out.MaxBodyBytes, d = hclconfig.Size(cb.MaxBodyBytes, ctx, DefaultMaxBodyBytes)
	diags = append(diags, d...)
	out.ReadTimeout, d = hclconfig.Duration(cb.ReadTimeout, ctx, DefaultReadTimeout)
	diags = append(diags, d...)
	out.GapTimeout, d = hclconfig.Duration(cb.GapTimeout, ctx, DefaultGapTimeout)
	diags = append(diags, d...)
	out.HeartbeatInterval, d = hclconfig.Duration(cb.Heartbeat, ctx, DefaultHeartbeatInterval)
	diags = append(diags, d...)
	out.SilenceMargin, d = hclconfig.Duration(cb.SilenceMargin, ctx, DefaultSilenceMargin)
	return append(diags, d...)
}
