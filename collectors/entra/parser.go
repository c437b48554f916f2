package entra

import (
	"context"
	"io"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
)

// Parser reads Graph directoryAudits responses or exports (an object with
// "value", an array, NDJSON) and Azure Activity Log exports, in any mix.
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
	return cloudjson.Parse(ctx, Type, r, name, []string{"value", "records"}, p.m.Map, p.set.Problems, out)
}
