package cloudtrail

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/event"
)

// Parser reads CloudTrail log files ({"Records":[...]}, gzipped or not),
// LookupEvents responses ({"Events":[{"CloudTrailEvent":"..."}]}), single
// records, arrays and NDJSON.
type Parser struct {
	set collectors.Settings
	m   *mapper
}

// NewParser returns a stateless parser.
func NewParser(set collectors.Settings) *Parser {
	return &Parser{set: set, m: &mapper{instance: set.Name, now: func() time.Time { return time.Now().UTC() }}}
}

// recordKeys are the arrays that hold records in CloudTrail's formats.
var recordKeys = []string{"Records", "Events"}

// Parse implements collectors.Parser.
func (p *Parser) Parse(ctx context.Context, r io.Reader, name string, out collectors.Emitter) error {
	r, err := maybeGunzip(r)
	if err != nil {
		return fmt.Errorf("cloudtrail: %s: %w", name, err)
	}
	return cloudjson.Parse(ctx, Type, r, name, recordKeys, cloudjson.One(p.m.Map), p.set.Problems, out)
}

// eachEvent maps every record of a log file or export.
func eachEvent(ctx context.Context, r io.Reader, name string, m *mapper, problems collectors.ProblemReporter, fn func(event.Event) error) error {
	return cloudjson.Records(ctx, r, name, recordKeys, problems, func(where string, rec json.RawMessage) error {
		ev, ok, err := m.Map(rec)
		if err != nil || !ok {
			return err
		}
		if err := fn(ev); err != nil {
			return fmt.Errorf("%w: %w", cloudjson.ErrStop, err)
		}
		return nil
	})
}

// maybeGunzip decompresses r when it starts with the gzip magic: S3 may
// serve CloudTrail's .json.gz objects without Content-Encoding.
func maybeGunzip(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}
