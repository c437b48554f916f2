package window

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/oauth2"

	"github.com/provtrail/provtrail/collectors"
)

// NewFactory returns the collectors.Factory of a cloud collector type from
// the source's own parts: decode (nil config when the block's own
// attributes did not decode), create (called with zero options: the
// agent's collectors use the wall clock and a default HTTP client) and the
// stateless parser's constructor.
func NewFactory[C any, P interface {
	*C
	collectors.Config
}, O any, K collectors.Collector, Q collectors.Parser](
	typ, description string,
	decode func(hcl.Body, *hcl.EvalContext) (P, hcl.Diagnostics),
	create func(collectors.Settings, P, O) (K, error),
	newParser func(collectors.Settings) Q,
) collectors.Factory {
	return collectors.Factory{
		Type:        typ,
		Description: description,
		DecodeConfig: func(body hcl.Body, ctx *hcl.EvalContext) (collectors.Config, hcl.Diagnostics) {
			c, diags := decode(body, ctx)
			if c == nil {
				return nil, diags
			}
			return c, diags
		},
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c, ok := cfg.(P)
			if !ok {
				return nil, fmt.Errorf("%s: config is %T", typ, cfg)
			}
			var opt O
			col, err := create(set, c, opt)
			if err != nil {
				return nil, err
			}
			return col, nil
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) { return newParser(set), nil },
	}
}

// Options are what tests replace in a REST collector: the clock, and the
// HTTP client every request (token requests included) goes through.
type Options struct {
	Clock      Clock
	HTTPClient *http.Client
}

// DefaultTimeout bounds one request when Options name no HTTP client.
const DefaultTimeout = 60 * time.Second

// Env is what a REST collector instance is built from: its settings and
// Options with the defaults filled in.
type Env struct {
	// Type is the collector type, Set the instance's settings.
	Type string
	Set  collectors.Settings
	// Clock is Options.Clock, else the wall clock.
	Clock Clock
	// Client is Options.HTTPClient, else a client with DefaultTimeout.
	// Sources wrap its Transport with their credentials.
	Client *http.Client
	// Logger is the settings' logger, else one that discards.
	Logger *slog.Logger
}

// NewEnv checks cfg and fills in the defaults of opt.
func NewEnv(typ string, set collectors.Settings, cfg collectors.Config, opt Options) (Env, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return Env{}, fmt.Errorf("%s %s: %s", typ, set.Name, diags.Error())
	}
	e := Env{Type: typ, Set: set, Clock: opt.Clock, Client: opt.HTTPClient, Logger: set.Logger}
	if e.Clock == nil {
		e.Clock = SystemClock{}
	}
	if e.Client == nil {
		e.Client = &http.Client{Timeout: DefaultTimeout}
	}
	if e.Logger == nil {
		e.Logger = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// Errorf wraps err with the collector's type and instance name.
func (e Env) Errorf(err error) error {
	return fmt.Errorf("%s %s: %w", e.Type, e.Set.Name, err)
}

// NowUTC is the time the collector observes events at.
func (e Env) NowUTC() time.Time { return e.Clock.Now().UTC() }

// HTTP returns a client for the source's API that sends through client,
// paced to perMinute requests.
func (e Env) HTTP(client *http.Client, perMinute float64) *HTTP {
	return &HTTP{Client: client, Clock: e.Clock, Logger: e.Logger, Pacer: NewPacer(e.Clock, perMinute)}
}

// Authorized returns Client with a bearer token from ts on every request.
func (e Env) Authorized(ts oauth2.TokenSource) *http.Client {
	return &http.Client{Timeout: e.Client.Timeout, Transport: &oauth2.Transport{Source: ts, Base: e.Client.Transport}}
}

// Collector is a cloud source's collectors.Collector: its Engine.
type Collector struct {
	engine *Engine
}

// Run implements collectors.Collector.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	return c.engine.Run(ctx, start, out)
}

// Stats returns the collector's counters.
func (c *Collector) Stats() *Stats { return &c.engine.Stats }

// Collector returns the collector whose Engine reads f (see Engine).
func (e Env) Collector(s Settings, f Fetcher) *Collector {
	return &Collector{engine: e.Engine(s, f)}
}

// Engine returns the Engine that reads f for the instance, with s resolved
// against now for a first start.
func (e Env) Engine(s Settings, f Fetcher) *Engine {
	return &Engine{
		Config:   s.Resolve(e.Clock.Now()),
		Fetcher:  f,
		Clock:    e.Clock,
		StateDir: e.Set.StateDir,
		Name:     e.Type + "/" + e.Set.Name,
		Logger:   e.Logger,
		Problems: e.Set.Problems,
	}
}
