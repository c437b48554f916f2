package entra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "entra" collector type.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "Microsoft Entra ID directory audits (Graph) and Azure RBAC role assignments (Activity Log)",
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
				return nil, fmt.Errorf("entra: config is %T", cfg)
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

// Collector reads one Entra tenant.
type Collector struct {
	engine *window.Engine
}

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, fmt.Errorf("entra %s: %s", set.Name, diags.Error())
	}
	tenant, err := window.Secret("tenant id", cfg.TenantID, "", TenantEnv)
	if err != nil {
		return nil, fmt.Errorf("entra %s: %w", set.Name, err)
	}
	clientID, err := window.Secret("client id", cfg.ClientID, "", ClientEnv)
	if err != nil {
		return nil, fmt.Errorf("entra %s: %w", set.Name, err)
	}
	secret, err := window.Secret("client secret", cfg.ClientSecret, cfg.ClientSecretFile, SecretEnv)
	if err != nil {
		return nil, fmt.Errorf("entra %s: %w", set.Name, err)
	}
	if url.PathEscape(tenant) != tenant {
		return nil, fmt.Errorf("entra %s: tenant id %q is not a GUID or domain", set.Name, tenant)
	}
	clock := opt.Clock
	if clock == nil {
		clock = window.SystemClock{}
	}
	base := opt.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 60 * time.Second}
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pageSize := cfg.PageSize
	if pageSize == 0 {
		pageSize = DefaultPageSize
	}
	tokenURL := cfg.authority.String() + "/" + tenant + "/oauth2/v2.0/token"
	// Scopes are the resource's own URL + "/.default", so national clouds
	// (graph.microsoft.us, management.usgovcloudapi.net) work by setting
	// graph_url and management_url.
	client := func(scope string) *http.Client {
		cc := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: tokenURL,
			Scopes: []string{scope}, AuthStyle: oauth2.AuthStyleInParams}
		// Token requests use the same transport (tests: loopback).
		tctx := context.WithValue(context.Background(), oauth2.HTTPClient, base)
		return &http.Client{Timeout: base.Timeout, Transport: &oauth2.Transport{
			Source: oauth2.ReuseTokenSource(nil, cc.TokenSource(tctx)), Base: base.Transport}}
	}
	m := &mapper{instance: set.Name, tenant: tenant, now: func() time.Time { return clock.Now().UTC() }}
	fetchers := []window.Fetcher{&graphFetcher{
		base: cfg.graph, pageSize: pageSize, m: m, problems: set.Problems,
		http: &window.HTTP{Client: client(cfg.graph.String() + "/.default"), Clock: clock, Logger: log,
			Pacer: window.NewPacer(clock, cfg.Window.RequestsPerMinute)},
	}}
	if len(cfg.ActivityLogSubscriptions) > 0 {
		arm := &window.HTTP{Client: client(cfg.manage.String() + "/.default"), Clock: clock, Logger: log,
			Pacer: window.NewPacer(clock, DefaultARMRequestsPerMinute)}
		for _, sub := range cfg.ActivityLogSubscriptions {
			fetchers = append(fetchers, &activityFetcher{base: cfg.manage, sub: sub, http: arm, m: m, problems: set.Problems})
		}
	}
	return &Collector{engine: &window.Engine{
		Config:   cfg.Window.Resolve(clock.Now()),
		Fetcher:  window.Chain(fetchers...),
		Clock:    clock,
		StateDir: set.StateDir,
		Name:     Type + "/" + set.Name,
		Logger:   log,
		Problems: set.Problems,
	}}, nil
}

// Run implements collectors.Collector.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	return c.engine.Run(ctx, start, out)
}

// Stats returns the collector's counters.
func (c *Collector) Stats() *window.Stats { return &c.engine.Stats }

// graphTime is the form $filter takes for activityDateTime.
const graphTime = "2006-01-02T15:04:05Z"

// odataEscape encodes a query value with %20 for spaces (OData services
// do not all read '+').
func odataEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

type graphFetcher struct {
	base     *url.URL
	pageSize int
	http     *window.HTTP
	m        *mapper
	problems collectors.ProblemReporter
}

func (f *graphFetcher) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	target := page
	if target == "" {
		filter := fmt.Sprintf("activityDateTime ge %s and activityDateTime le %s",
			w.From.UTC().Format(graphTime), w.To.UTC().Format(graphTime))
		target = f.base.String() + "/v1.0/auditLogs/directoryAudits?$filter=" + odataEscape(filter) +
			"&$top=" + strconv.Itoa(f.pageSize)
	} else if _, err := window.SameOrigin(page, f.base); err != nil {
		return window.Page{}, fmt.Errorf("entra: %w: %w", window.ErrPageToken, err)
	}
	var body struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"@odata.nextLink"`
	}
	if err := get(ctx, f.http, target, page != "", &body); err != nil {
		return window.Page{}, fmt.Errorf("entra: directoryAudits: %w", err)
	}
	return mapPage(f.m, f.problems, "graph "+w.String(), body.Value, body.NextLink, page)
}

type activityFetcher struct {
	base     *url.URL
	sub      string
	http     *window.HTTP
	m        *mapper
	problems collectors.ProblemReporter
}

// activityTime is the form the Activity Log $filter takes.
const activityTime = "2006-01-02T15:04:05Z"

func (f *activityFetcher) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	target := page
	if target == "" {
		filter := fmt.Sprintf("eventTimestamp ge '%s' and eventTimestamp le '%s' and resourceProvider eq 'Microsoft.Authorization'",
			w.From.UTC().Format(activityTime), w.To.UTC().Format(activityTime))
		target = f.base.String() + "/subscriptions/" + url.PathEscape(f.sub) +
			"/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01&$filter=" + odataEscape(filter)
	} else if _, err := window.SameOrigin(page, f.base); err != nil {
		return window.Page{}, fmt.Errorf("entra: %w: %w", window.ErrPageToken, err)
	}
	var body struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"nextLink"`
	}
	if err := get(ctx, f.http, target, page != "", &body); err != nil {
		return window.Page{}, fmt.Errorf("entra: activity log of subscription %s: %w", f.sub, err)
	}
	return mapPage(f.m, f.problems, "activity "+f.sub+" "+w.String(), body.Value, body.NextLink, page)
}

func get(ctx context.Context, h *window.HTTP, target string, isNext bool, into any) error {
	resp, err := h.Do(ctx, func(ctx context.Context) (*http.Request, error) {
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
		if isNext && errors.As(err, &se) && se.Status == http.StatusBadRequest {
			return fmt.Errorf("%w: %w", window.ErrPageToken, err)
		}
		return err
	}
	if err := json.Unmarshal(resp.Body, into); err != nil {
		return fmt.Errorf("reply is not a JSON collection: %w", err)
	}
	return nil
}

func mapPage(m *mapper, problems collectors.ProblemReporter, where string, recs []json.RawMessage, next, page string) (window.Page, error) {
	var p window.Page
	for i, rec := range recs {
		evs, ok, err := m.Map(rec)
		if err != nil {
			cloudjson.Report(problems, fmt.Sprintf("%s #%d", where, i+1), err.Error(), rec)
			continue
		}
		if ok {
			for _, ev := range evs {
				p.Events = append(p.Events, ev)
			}
		}
	}
	p.Next = next
	return p, nil
}
