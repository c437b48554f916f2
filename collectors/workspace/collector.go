package workspace

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/gauth"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "workspace" collector type.
func NewFactory() collectors.Factory {
	return window.NewFactory(Type,
		"Google Workspace admin audit log (Reports API: users, groups, admin roles, 2SV)",
		DecodeConfig, New, NewParser)
}

// Options are what tests replace.
type Options = window.Options

// Collector reads one Workspace customer's admin log.
type Collector = window.Collector

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	env, err := window.NewEnv(Type, set, cfg, opt)
	if err != nil {
		return nil, err
	}
	ts, err := gauth.TokenSource(cfg.CredentialsFile, cfg.TokenURL, cfg.Subject, env.Client, Scope)
	if err != nil {
		return nil, env.Errorf(err)
	}
	f := &fetcher{
		endpoint: cfg.endpoint, customer: cfg.CustomerID, pageSize: cfg.PageSize,
		http:     env.HTTP(env.Authorized(ts), cfg.Window.RequestsPerMinute),
		m:        &mapper{instance: set.Name, now: env.NowUTC},
		problems: set.Problems,
	}
	if f.pageSize == 0 {
		f.pageSize = DefaultPageSize
	}
	return env.Collector(cfg.Window, f), nil
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
	resp, err := f.http.Send(ctx, http.MethodGet, target, nil, func(req *http.Request) error {
		req.Header.Set("Accept", "application/json")
		return nil
	})
	if err != nil {
		if window.PageRefused(err, page) {
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
	return window.Page{
		Events: cloudjson.MapPage(out.Items, f.m.Map, f.problems, "workspace "+w.String()),
		Next:   out.NextPageToken,
	}, nil
}
