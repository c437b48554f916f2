package workspace

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
	"golang.org/x/oauth2"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/gauth"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "workspace" collector type.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "Google Workspace admin audit log (Reports API: users, groups, admin roles, 2SV)",
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
				return nil, fmt.Errorf("workspace: config is %T", cfg)
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

// Collector reads one Workspace customer's admin log.
type Collector struct {
	engine *window.Engine
}

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, fmt.Errorf("workspace %s: %s", set.Name, diags.Error())
	}
	clock := opt.Clock
	if clock == nil {
		clock = window.SystemClock{}
	}
	base := opt.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 60 * time.Second}
	}
	ts, err := gauth.TokenSource(cfg.CredentialsFile, cfg.TokenURL, cfg.Subject, base, Scope)
	if err != nil {
		return nil, fmt.Errorf("workspace %s: %w", set.Name, err)
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &fetcher{
		endpoint: cfg.endpoint, customer: cfg.CustomerID, pageSize: cfg.PageSize,
		http: &window.HTTP{Client: &http.Client{Timeout: base.Timeout, Transport: &oauth2.Transport{Source: ts, Base: base.Transport}},
			Clock: clock, Logger: log, Pacer: window.NewPacer(clock, cfg.Window.RequestsPerMinute)},
		m:        &mapper{instance: set.Name, now: func() time.Time { return clock.Now().UTC() }},
		problems: set.Problems,
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
	endpoint *url.URL
	customer string
	pageSize int
	http     *window.HTTP
	m        *mapper
	problems collectors.ProblemReporter
}

func (f *fetcher) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	q := url.Values{}
	q.Set("startTime", w.From.UTC().Format(time.RFC3339Nano))
	q.Set("endTime", w.To.UTC().Format(time.RFC3339Nano))
	q.Set("maxResults", strconv.Itoa(f.pageSize))
	if f.customer != "" {
		q.Set("customerId", f.customer)
	}
	if page != "" {
		q.Set("pageToken", page)
	}
	target := f.endpoint.String() + "/admin/reports/v1/activity/users/all/applications/admin?" + q.Encode()
	resp, err := f.http.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "provtrail")
		return req, nil
	})
	if err != nil {
		var se *window.StatusError
		if page != "" && errors.As(err, &se) && se.Status == http.StatusBadRequest {
			return window.Page{}, fmt.Errorf("workspace: page token: %w: %w", window.ErrPageToken, err)
		}
		return window.Page{}, fmt.Errorf("workspace: activities.list: %w", err)
	}
	var out struct {
		Items         []json.RawMessage `json:"items"`
		NextPageToken string            `json:"nextPageToken"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return window.Page{}, fmt.Errorf("workspace: activities.list reply: %w", err)
	}
	var p window.Page
	for i, rec := range out.Items {
		evs, ok, err := f.m.Map(rec)
		if err != nil {
			cloudjson.Report(f.problems, fmt.Sprintf("workspace %s #%d", w.String(), i+1), err.Error(), rec)
			continue
		}
		if ok {
			p.Events = append(p.Events, evs...)
		}
	}
	p.Next = out.NextPageToken
	return p, nil
}
