package workspace

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
)

// Parser reads activities.list responses ({"items": [...]}), arrays of
// activities and NDJSON exports.
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
	err := cloudjson.Records(ctx, r, name, []string{"items"}, p.set.Problems, func(where string, rec json.RawMessage) error {
		evs, ok, err := p.m.Map(rec)
		if err != nil || !ok {
			return err
		}
		for _, ev := range evs {
			ev.Source.File = name
			if err := out.Emit(ctx, collectors.Record{Event: ev}); err != nil {
				return fmt.Errorf("%w: %w", cloudjson.ErrStop, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("workspace: parse %s: %w", name, err)
	}
	return nil
}
