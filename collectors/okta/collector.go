package okta

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

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "okta" collector type.
func NewFactory() collectors.Factory {
	return collectors.Factory{
		Type:        Type,
		Description: "Okta System Log (user lifecycle, group membership, admin privileges, API tokens)",
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
				return nil, fmt.Errorf("okta: config is %T", cfg)
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

// Collector reads one Okta org.
type Collector struct {
	engine *window.Engine
}

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, fmt.Errorf("okta %s: %s", set.Name, diags.Error())
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
	// Credentials: an OAuth service app (private_key_jwt) or an SSWS API
	// token. Either way only the Authorization header carries them.
	var auth func(*http.Request) error
	if cfg.OAuth != nil {
		tokenURL := cfg.OAuth.TokenURL
		if tokenURL == "" {
			tokenURL = cfg.base.String() + "/oauth2/v1/token"
		}
		ts, err := newAssertionSource(cfg.OAuth, tokenURL, hc, func() time.Time { return clock.Now() })
		if err != nil {
			return nil, fmt.Errorf("okta %s: %w", set.Name, err)
		}
		auth = func(req *http.Request) error {
			t, err := ts.Token()
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+t.AccessToken)
			return nil
		}
	} else {
		token, err := cfg.token()
		if err != nil {
			return nil, fmt.Errorf("okta %s: %w", set.Name, err)
		}
		auth = func(req *http.Request) error {
			req.Header.Set("Authorization", "SSWS "+token)
			return nil
		}
	}
	pageSize := cfg.PageSize
	if pageSize == 0 {
		pageSize = DefaultPageSize
	}
	f := &fetcher{
		base:     cfg.base,
		auth:     auth,
		pageSize: pageSize,
		http: &window.HTTP{Client: hc, Clock: clock, Logger: log,
			Pacer: window.NewPacer(clock, cfg.Window.RequestsPerMinute)},
		m:        &mapper{instance: set.Name, org: cfg.base.Host, now: func() time.Time { return clock.Now().UTC() }},
		problems: set.Problems,
	}
	return &Collector{engine: &window.Engine{
		Config:   cfg.Window.Resolve(clock.Now()),
		Fetcher:  f,
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

type fetcher struct {
	base     *url.URL
	auth     func(*http.Request) error
	pageSize int
	http     *window.HTTP
	m        *mapper
	problems collectors.ProblemReporter
}

// oktaTime is the ISO 8601 form the System Log takes for since/until.
const oktaTime = "2006-01-02T15:04:05.000Z"

func (f *fetcher) Fetch(ctx context.Context, w window.Window, page string) (window.Page, error) {
	target := page
	if target == "" {
		q := url.Values{}
		q.Set("since", w.From.UTC().Format(oktaTime))
		q.Set("until", w.To.UTC().Format(oktaTime))
		q.Set("sortOrder", "ASCENDING")
		q.Set("limit", strconv.Itoa(f.pageSize))
		target = f.base.String() + "/api/v1/logs?" + q.Encode()
	} else if err := f.sameOrg(page); err != nil {
		return window.Page{}, fmt.Errorf("%w: %w", window.ErrPageToken, err)
	}
	resp, err := f.http.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return nil, err
		}
		if err := f.auth(req); err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", "provtrail")
		return req, nil
	})
	if err != nil {
		var se *window.StatusError
		if page != "" && errors.As(err, &se) && se.Status == http.StatusBadRequest {
			return window.Page{}, fmt.Errorf("okta: next link: %w: %w", window.ErrPageToken, err)
		}
		return window.Page{}, fmt.Errorf("okta: GET /api/v1/logs: %w", err)
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(resp.Body, &recs); err != nil {
		return window.Page{}, fmt.Errorf("okta: /api/v1/logs reply is not a JSON array: %w", err)
	}
	var p window.Page
	for i, rec := range recs {
		ev, ok, err := f.m.Map(rec)
		if err != nil {
			cloudjson.Report(f.problems, fmt.Sprintf("okta %s page %s #%d", w.String(), pageName(page), i+1), err.Error(), rec)
			continue
		}
		if ok {
			ev.Source.Cursor = page
			p.Events = append(p.Events, ev)
		}
	}
	// A bounded query ends with an empty page (Okta may still offer a
	// next link).
	if len(recs) > 0 {
		p.Next = window.NextLink(resp.Header.Values("Link"))
	}
	return p, nil
}

// sameOrg refuses a next link that would carry the token to another host.
func (f *fetcher) sameOrg(link string) error {
	u, err := window.SameOrigin(link, f.base)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(u.Path, "/api/v1/logs") {
		return fmt.Errorf("next link path %s is not /api/v1/logs", u.Path)
	}
	return nil
}

func pageName(p string) string {
	if p == "" {
		return "first"
	}
	if u, err := url.Parse(p); err == nil {
		if a := u.Query().Get("after"); a != "" {
			return "after=" + a
		}
	}
	return "next"
}
