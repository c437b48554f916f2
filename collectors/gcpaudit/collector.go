package gcpaudit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/oauth2"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/gauth"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "gcpaudit" collector type.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "Google Cloud Admin Activity audit logs (IAM policy bindings, service accounts and keys)",
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
				return nil, fmt.Errorf("gcpaudit: config is %T", cfg)
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

// Collector reads Admin Activity audit logs of a set of resources.
type Collector struct {
	engine *window.Engine
}

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, fmt.Errorf("gcpaudit %s: %s", set.Name, diags.Error())
	}
	clock := opt.Clock
	if clock == nil {
		clock = window.SystemClock{}
	}
	base := opt.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 60 * time.Second}
	}
	ts, err := gauth.TokenSource(cfg.CredentialsFile, cfg.TokenURL, "", base, Scope)
	if err != nil {
		return nil, fmt.Errorf("gcpaudit %s: %w", set.Name, err)
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := &http.Client{Timeout: base.Timeout, Transport: &oauth2.Transport{Source: ts, Base: base.Transport}}
	f := &fetcher{
		endpoint: cfg.endpoint, resources: cfg.ResourceNames, filter: cfg.Filter, pageSize: cfg.PageSize,
		http:     &window.HTTP{Client: client, Clock: clock, Logger: log, Pacer: window.NewPacer(clock, cfg.Window.RequestsPerMinute)},
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
	endpoint  *url.URL
	resources []string
	filter    string
	pageSize  int
	http      *window.HTTP
	m         *mapper
	problems  collectors.ProblemReporter
}

// auditFilter selects Admin Activity entries of IAM changes in a window.
func auditFilter(w window.Window, extra string) string {
	f := `log_id("cloudaudit.googleapis.com/activity")` +
		` AND timestamp>="` + w.From.UTC().Format(time.RFC3339Nano) + `"` +
		` AND timestamp<"` + w.To.UTC().Format(time.RFC3339Nano) + `"` +
		` AND (protoPayload.serviceName="iam.googleapis.com" OR protoPayload.methodName:"SetIamPolicy" OR protoPayload.methodName:"setIamPermissions")`
	if strings.TrimSpace(extra) != "" {
		f += " AND (" + extra + ")"
	}
	return f
}

func (f *fetcher) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	body, err := json.Marshal(map[string]any{
		"resourceNames": f.resources,
		"filter":        auditFilter(w, f.filter),
		"orderBy":       "timestamp asc",
		"pageSize":      f.pageSize,
		"pageToken":     page,
	})
	if err != nil {
		return window.Page{}, err
	}
	target := f.endpoint.String() + "/v2/entries:list"
	resp, err := f.http.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "provtrail")
		return req, nil
	})
	if err != nil {
		var se *window.StatusError
		if page != "" && errors.As(err, &se) && se.Status == http.StatusBadRequest {
			// Page tokens live 24 hours and are bound to the query.
			return window.Page{}, fmt.Errorf("gcpaudit: page token: %w: %w", window.ErrPageToken, err)
		}
		return window.Page{}, fmt.Errorf("gcpaudit: entries:list: %w", err)
	}
	var out struct {
		Entries       []json.RawMessage `json:"entries"`
		NextPageToken string            `json:"nextPageToken"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return window.Page{}, fmt.Errorf("gcpaudit: entries:list reply: %w", err)
	}
	var p window.Page
	for i, rec := range out.Entries {
		evs, ok, err := f.m.Map(rec)
		if err != nil {
			cloudjson.Report(f.problems, fmt.Sprintf("gcpaudit %s #%d", w.String(), i+1), err.Error(), rec)
			continue
		}
		if ok {
			p.Events = append(p.Events, evs...)
		}
	}
	p.Next = out.NextPageToken
	return p, nil
}
