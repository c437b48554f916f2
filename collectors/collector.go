package collectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/event"
)

// Position is a collector's resume point: file identity and offset, an LDAP
// sync cookie or change number, a cloud API window and cursor. Only the
// collector that made it interprets it; the agent stores it verbatim and
// hands the last committed one back to Run.
type Position []byte

// Record is one event and the position just after it: resuming from
// Position must not emit Event again.
type Record struct {
	Event    event.Event
	Position Position
}

// Emitter receives a collector's records. Emit blocks while the agent
// cannot accept more (the spool is full): that is backpressure, and a
// collector must not read ahead of it. It returns an error only when ctx is
// done or the agent is shutting down, and the collector must then return.
// Emit must not keep recs after it returns (it may keep the records it
// copied out of it): a collector may reuse the slice for its next call.
type Emitter interface {
	Emit(ctx context.Context, recs ...Record) error
}

// EmitFunc adapts a function to Emitter.
type EmitFunc func(ctx context.Context, recs ...Record) error

// Emit calls f.
func (f EmitFunc) Emit(ctx context.Context, recs ...Record) error { return f(ctx, recs...) }

// Collector reads one source.
//
// Run reads from start (nil: the collector's configured first start, such
// as the end of a file or backfill_since) and emits records in source order
// until ctx is cancelled, when it returns ctx.Err(). Errors the collector
// can recover from (a server down, a malformed record) are reported through
// Settings and retried with backoff, not returned. Run is called at most
// once at a time per Collector.
type Collector interface {
	Run(ctx context.Context, start Position, out Emitter) error
}

// Parser turns a stream of a source's raw records (a log file, an export)
// into events without any state: it backs `provtrail parse` and the
// collector's own tests. name is where the input came from, for Source.File
// and for problem reports.
type Parser interface {
	Parse(ctx context.Context, r io.Reader, name string, out Emitter) error
}

// Problem is one input record a collector could not read: counted, reported
// with where it came from, never fatal.
type Problem struct {
	// Where is the input's location: "file:line", a cursor, a request id.
	Where  string
	Reason string
	// Sample is a short, redacted prefix of the offending input.
	Sample string
}

func (p Problem) String() string {
	if p.Sample == "" {
		return fmt.Sprintf("%s: %s", p.Where, p.Reason)
	}
	return fmt.Sprintf("%s: %s: %q", p.Where, p.Reason, p.Sample)
}

// ProblemReporter receives Problems. Implementations must be safe for
// concurrent use.
type ProblemReporter interface {
	Report(Problem)
}

// ProblemFunc adapts a function to ProblemReporter.
type ProblemFunc func(Problem)

// Report calls f.
func (f ProblemFunc) Report(p Problem) { f(p) }

// ProblemCounter counts problems and forwards them to Next, if set.
type ProblemCounter struct {
	Next  ProblemReporter
	count atomic.Int64
}

// Report counts p and passes it on.
func (c *ProblemCounter) Report(p Problem) {
	c.count.Add(1)
	if c.Next != nil {
		c.Next.Report(p)
	}
}

// Count returns how many problems were reported.
func (c *ProblemCounter) Count() int64 { return c.count.Load() }

// Settings is what the agent gives every collector it creates.
type Settings struct {
	// Type and Name are the labels of the collector's block.
	Type, Name string
	// Hostname is this host's name, for Origin.Host where the source has
	// none of its own.
	Hostname string
	// StateDir is a directory private to this collector instance for
	// state beyond its Position (snapshots, dedupe windows). It exists.
	StateDir string
	Logger   *slog.Logger
	Problems ProblemReporter
}

// Config is a collector's decoded HCL block. Validate returns every problem
// with the block, as HCL diagnostics pointing at the offending attribute
// where it can.
type Config interface {
	Validate() hcl.Diagnostics
}

// Factory creates collectors of one type.
type Factory struct {
	// Type is the first label of the collector block: collector "TYPE" "NAME".
	Type string
	// Description is one line for `provtrail parse --help` and docs.
	Description string
	// DecodeConfig decodes the block body into the collector's own config,
	// rejecting unknown attributes and blocks.
	DecodeConfig func(body hcl.Body, ctx *hcl.EvalContext) (Config, hcl.Diagnostics)
	// New creates a collector from a config DecodeConfig returned.
	New func(set Settings, cfg Config) (Collector, error)
	// NewParser, when set, returns a stateless parser over the source's raw
	// format, used by `provtrail parse`.
	NewParser func(set Settings) (Parser, error)
}

// ErrUnknownType is returned for a collector type no factory provides.
var ErrUnknownType = errors.New("unknown collector type")

// Registry maps collector types to their factories.
type Registry struct {
	factories map[string]Factory
	order     []string
}

// NewRegistry builds a registry from factories, rejecting duplicates and
// incomplete factories.
func NewRegistry(factories ...Factory) (*Registry, error) {
	r := &Registry{factories: make(map[string]Factory, len(factories))}
	for _, f := range factories {
		if f.Type == "" || f.DecodeConfig == nil || f.New == nil {
			return nil, fmt.Errorf("collector factory %q: Type, DecodeConfig and New are required", f.Type)
		}
		if _, dup := r.factories[f.Type]; dup {
			return nil, fmt.Errorf("collector type %q registered twice", f.Type)
		}
		r.factories[f.Type] = f
		r.order = append(r.order, f.Type)
	}
	return r, nil
}

// Lookup returns the factory for typ.
func (r *Registry) Lookup(typ string) (Factory, error) {
	f, ok := r.factories[typ]
	if !ok {
		return Factory{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownType, typ, r.order)
	}
	return f, nil
}

// Types returns the registered types in registration order.
func (r *Registry) Types() []string { return append([]string(nil), r.order...) }
