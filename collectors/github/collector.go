package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "github" collector type.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "GitHub organisation audit log (org and team membership, roles, collaborators, token grants)",
		DecodeConfig: func(body hcl.Body, ctx *hcl.EvalContext) (collectors.Config, hcl.Diagnostics) {
			c, diags := DecodeConfig(body, ctx)
			if c == nil {
				return nil, diags
			}
			return c, diags
		},
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, fmt.Errorf("github: config is %T", cfg)
			}
			return New(set, c, Options{})
		},
		NewParser: func(set collectors.Settings) (collectors.Parser, error) { return NewParser(set), nil },
	}
}

// Options are what tests replace.
type Options struct {
	Clock      window.Clock
	HTTPClient *http.Client
}

// Collector reads one organisation's audit log.
type Collector struct {
	engine *window.Engine
}

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, fmt.Errorf("github %s: %s", set.Name, diags.Error())
	}
	token, err := window.Secret("GitHub token", cfg.Token, cfg.TokenFile, TokenEnv)
	if err != nil {
		return nil, fmt.Errorf("github %s: %w", set.Name, err)
	}
	clock := opt.Clock
	if clock == nil {
		clock = window.SystemClock{}
	}
	hc := opt.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &fetcher{
		base: cfg.base, org: cfg.Org, token: token, include: cfg.Include, pageSize: cfg.PageSize,
		http:     &window.HTTP{Client: hc, Clock: clock, Logger: log, Pacer: window.NewPacer(clock, cfg.Window.RequestsPerMinute)},
		m:        &mapper{instance: set.Name, now: func() time.Time { return clock.Now().UTC() }},
		problems: set.Problems,
	}
	if f.include == "" {
		f.include = "web"
	}
	if f.pageSize == 0 {
		f.pageSize = DefaultPageSize
	}
	return &Collector{engine: &window.Engine{
		Config: cfg.Window.Resolve(clock.Now()), Fetcher: f, Clock: clock, StateDir: set.StateDir,
		Name: Type + "/" + set.Name, Logger: log, Problems: set.Problems,
	}}, nil
}

// Run implements collectors.Collector.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	return c.engine.Run(ctx, start, out)
}

type fetcher struct {
	base     *url.URL
	org      string
	token    string
	include  string
	pageSize int
	http     *window.HTTP
	m        *mapper
	problems collectors.ProblemReporter
}

// ghTime is the form GitHub's search syntax documents for a date with a
// time: YYYY-MM-DDTHH:MM:SS+00:00.
const ghTime = "2006-01-02T15:04:05+00:00"

func (f *fetcher) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	target := page
	if target == "" {
		q := url.Values{}
		q.Set("phrase", "created:"+w.From.UTC().Format(ghTime)+".."+w.To.UTC().Format(ghTime))
		q.Set("order", "asc")
		q.Set("include", f.include)
		q.Set("per_page", strconv.Itoa(f.pageSize))
		target = f.base.String() + "/orgs/" + url.PathEscape(f.org) + "/audit-log?" + q.Encode()
	} else if _, err := window.SameOrigin(page, f.base); err != nil {
		return window.Page{}, fmt.Errorf("github: %w: %w", window.ErrPageToken, err)
	}
	resp, err := f.http.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+f.token)
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		req.Header.Set("User-Agent", "provtrail")
		return req, nil
	})
	if err != nil {
		var se *window.StatusError
		if page != "" && errors.As(err, &se) && (se.Status == http.StatusBadRequest || se.Status == http.StatusUnprocessableEntity) {
			return window.Page{}, fmt.Errorf("github: cursor: %w: %w", window.ErrPageToken, err)
		}
		return window.Page{}, fmt.Errorf("github: GET /orgs/%s/audit-log: %w", f.org, err)
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(resp.Body, &recs); err != nil {
		return window.Page{}, fmt.Errorf("github: audit-log reply is not a JSON array: %w", err)
	}
	var p window.Page
	for i, rec := range recs {
		ev, ok, err := f.m.Map(rec)
		if err != nil {
			cloudjson.Report(f.problems, fmt.Sprintf("github %s #%d", w.String(), i+1), err.Error(), rec)
			continue
		}
		if ok {
			p.Events = append(p.Events, ev)
		}
	}
	if len(recs) > 0 {
		p.Next = window.NextLink(resp.Header.Values("Link"))
	}
	return p, nil
}
