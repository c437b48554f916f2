package entra

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "entra" collector type.
func NewFactory() collectors.Factory {
	return window.NewFactory(Type,
		"Microsoft Entra ID directory audits (Graph) and Azure RBAC role assignments (Activity Log)",
		DecodeConfig, New, NewParser)
}

// Options are what tests replace.
type Options = window.Options

// Collector reads one Entra tenant.
type Collector = window.Collector

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	env, err := window.NewEnv(Type, set, cfg, opt)
	if err != nil {
		return nil, err
	}
	tenant, err := window.Secret("tenant id", cfg.TenantID, "", TenantEnv)
	if err != nil {
		return nil, env.Errorf(err)
	}
	clientID, err := window.Secret("client id", cfg.ClientID, "", ClientEnv)
	if err != nil {
		return nil, env.Errorf(err)
	}
	secret, err := window.Secret("client secret", cfg.ClientSecret, cfg.ClientSecretFile, SecretEnv)
	if err != nil {
		return nil, env.Errorf(err)
	}
	if url.PathEscape(tenant) != tenant {
		return nil, fmt.Errorf("entra %s: tenant id %q is not a GUID or domain", set.Name, tenant)
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
		tctx := context.WithValue(context.Background(), oauth2.HTTPClient, env.Client)
		return env.Authorized(oauth2.ReuseTokenSource(nil, cc.TokenSource(tctx)))
	}
	m := &mapper{instance: set.Name, tenant: tenant, now: env.NowUTC}
	fetchers := []window.Fetcher{&graphFetcher{
		base: cfg.graph, pageSize: pageSize, m: m, problems: set.Problems,
		http: env.HTTP(client(cfg.graph.String()+"/.default"), cfg.Window.RequestsPerMinute),
	}}
	if len(cfg.ActivityLogSubscriptions) > 0 {
		arm := env.HTTP(client(cfg.manage.String()+"/.default"), DefaultARMRequestsPerMinute)
		for _, sub := range cfg.ActivityLogSubscriptions {
			fetchers = append(fetchers, &activityFetcher{base: cfg.manage, sub: sub, http: arm, m: m, problems: set.Problems})
		}
	}
	return env.Collector(cfg.Window, window.Chain(fetchers...)), nil
}

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
	if err := get(ctx, f.http, target, page, &body); err != nil {
		return window.Page{}, fmt.Errorf("entra: directoryAudits: %w", err)
	}
	return window.Page{Events: cloudjson.MapPage(body.Value, f.m.Map, f.problems, "graph "+w.String()), Next: body.NextLink}, nil
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
	if err := get(ctx, f.http, target, page, &body); err != nil {
		return window.Page{}, fmt.Errorf("entra: activity log of subscription %s: %w", f.sub, err)
	}
	return window.Page{Events: cloudjson.MapPage(body.Value, f.m.Map, f.problems, "activity "+f.sub+" "+w.String()), Next: body.NextLink}, nil
}

// get reads target (page: the next link it came from, "" for a window's
// first page) into into.
func get(ctx context.Context, h *window.HTTP, target, page string, into any) error {
	resp, err := h.Send(ctx, http.MethodGet, target, nil, func(req *http.Request) error {
		req.Header.Set("Accept", "application/json")
		return nil
	})
	if err != nil {
		if window.PageRefused(err, page) {
			return fmt.Errorf("%w: %w", window.ErrPageToken, err)
		}
		return err
	}
	if err := json.Unmarshal(resp.Body, into); err != nil {
		return fmt.Errorf("reply is not a JSON collection: %w", err)
	}
	return nil
}
