package okta

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "okta" collector type.
func NewFactory() collectors.Factory {
	return window.NewFactory(Type,
		"Okta System Log (user lifecycle, group membership, admin privileges, API tokens)",
		DecodeConfig, New, NewParser)
}

// Options are what tests replace.
type Options = window.Options

// Collector reads one Okta org.
type Collector = window.Collector

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	env, err := window.NewEnv(Type, set, cfg, opt)
	if err != nil {
		return nil, err
	}
	// Credentials: an OAuth service app (private_key_jwt) or an SSWS API
	// token. Either way only the Authorization header carries them.
	var auth func(*http.Request) error
	if cfg.OAuth != nil {
		tokenURL := cfg.OAuth.TokenURL
		if tokenURL == "" {
			tokenURL = cfg.base.String() + "/oauth2/v1/token"
		}
		ts, err := newAssertionSource(cfg.OAuth, tokenURL, env.Client, env.Clock.Now)
		if err != nil {
			return nil, env.Errorf(err)
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
			return nil, env.Errorf(err)
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
		http:     env.HTTP(env.Client, cfg.Window.RequestsPerMinute),
		m:        &mapper{instance: set.Name, org: cfg.base.Host, now: env.NowUTC},
		problems: set.Problems,
	}
	return env.Collector(cfg.Window, f), nil
}

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
	resp, err := f.http.Send(ctx, http.MethodGet, target, nil, func(req *http.Request) error {
		if err := f.auth(req); err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		return nil
	})
	if err != nil {
		if window.PageRefused(err, page) {
			return window.Page{}, fmt.Errorf("okta: next link: %w: %w", window.ErrPageToken, err)
		}
		return window.Page{}, fmt.Errorf("okta: GET /api/v1/logs: %w", err)
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(resp.Body, &recs); err != nil {
		return window.Page{}, fmt.Errorf("okta: /api/v1/logs reply is not a JSON array: %w", err)
	}
	p := window.Page{Events: cloudjson.MapPage(recs, cloudjson.One(f.m.Map), f.problems,
		fmt.Sprintf("okta %s page %s", w.String(), pageName(page)))}
	for i := range p.Events {
		p.Events[i].Source.Cursor = page
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
