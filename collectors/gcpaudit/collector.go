package gcpaudit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/gauth"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "gcpaudit" collector type.
func NewFactory() collectors.Factory {
	return window.NewFactory(Type,
		"Google Cloud Admin Activity audit logs (IAM policy bindings, service accounts and keys)",
		DecodeConfig, New, NewParser)
}

// Options are what tests replace.
type Options = window.Options

// Collector reads Admin Activity audit logs of a set of resources.
type Collector = window.Collector

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	env, err := window.NewEnv(Type, set, cfg, opt)
	if err != nil {
		return nil, err
	}
	ts, err := gauth.TokenSource(cfg.CredentialsFile, cfg.TokenURL, "", env.Client, Scope)
	if err != nil {
		return nil, env.Errorf(err)
	}
	f := &fetcher{
		endpoint: cfg.endpoint, resources: cfg.ResourceNames, filter: cfg.Filter, pageSize: cfg.PageSize,
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
	resp, err := f.http.Send(ctx, http.MethodPost, target, body, func(req *http.Request) error {
		req.Header.Set("Content-Type", "application/json")
		return nil
	})
	if err != nil {
		if window.PageRefused(err, page) {
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
	return window.Page{
		Events: cloudjson.MapPage(out.Entries, f.m.Map, f.problems, "gcpaudit "+w.String()),
		Next:   out.NextPageToken,
	}, nil
}
