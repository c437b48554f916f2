package okta

import (
	"context"
	"io"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
)

// Parser reads System Log exports: a JSON array of LogEvents (an API page),
// one LogEvent, or NDJSON.
type Parser struct {
	set collectors.Settings
	m   *mapper
}

// NewParser returns a stateless parser.
func NewParser(set collectors.Settings) *Parser {
	return &Parser{set: set, m: &mapper{instance: set.Name, now: func() time.Time { return time.Now().UTC() }}}
}

// Parse implements collectors.Parser.
func (p *Parser) Parse(ctx context.Context, r io.Reader, name string, out collectors.Emitter) error {
	return cloudjson.Parse(ctx, Type, r, name, nil, cloudjson.One(p.m.Map), p.set.Problems, out)
}
