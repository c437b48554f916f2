package okta

import (
	"context"
	"encoding/json"
	"fmt"
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
	err := cloudjson.Records(ctx, r, name, nil, p.set.Problems, func(where string, rec json.RawMessage) error {
		ev, ok, err := p.m.Map(rec)
		if err != nil || !ok {
			return err
		}
		ev.Source.File = name
		if err := out.Emit(ctx, collectors.Record{Event: ev}); err != nil {
			return fmt.Errorf("%w: %w", cloudjson.ErrStop, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("okta: parse %s: %w", name, err)
	}
	return nil
}
