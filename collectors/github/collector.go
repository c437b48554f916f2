package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/collectors/internal/window"
)

// NewFactory returns the factory of the "github" collector type.
func NewFactory() collectors.Factory {
	return window.NewFactory(Type,
		"GitHub organisation audit log (org and team membership, roles, collaborators, token grants)",
		DecodeConfig, New, NewParser)
}

// Options are what tests replace.
type Options = window.Options

// Collector reads one organisation's audit log.
type Collector = window.Collector

// New creates a collector.
func New(set collectors.Settings, cfg *Config, opt Options) (*Collector, error) {
	env, err := window.NewEnv(Type, set, cfg, opt)
	if err != nil {
		return nil, err
	}
	token, err := window.Secret("GitHub token", cfg.Token, cfg.TokenFile, TokenEnv)
	if err != nil {
		return nil, env.Errorf(err)
	}
	f := &fetcher{
		base: cfg.base, org: cfg.Org, token: token, include: cfg.Include, pageSize: cfg.PageSize,
		http:     env.HTTP(env.Client, cfg.Window.RequestsPerMinute),
		m:        &mapper{instance: set.Name, now: env.NowUTC},
		problems: set.Problems,
	}
	if f.include == "" {
		f.include = "web"
	}
	if f.pageSize == 0 {
		f.pageSize = DefaultPageSize
	}
	return env.Collector(cfg.Window, f), nil
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
	resp, err := f.http.Send(ctx, http.MethodGet, target, nil, func(req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+f.token)
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
		return nil
	})
	if err != nil {
		if window.PageRefused(err, page, http.StatusBadRequest, http.StatusUnprocessableEntity) {
			return window.Page{}, fmt.Errorf("github: cursor: %w: %w", window.ErrPageToken, err)
		}
		return window.Page{}, fmt.Errorf("github: GET /orgs/%s/audit-log: %w", f.org, err)
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(resp.Body, &recs); err != nil {
		return window.Page{}, fmt.Errorf("github: audit-log reply is not a JSON array: %w", err)
	}
	p := window.Page{Events: cloudjson.MapPage(recs, cloudjson.One(f.m.Map), f.problems, "github "+w.String())}
	if len(recs) > 0 {
		p.Next = window.NextLink(resp.Header.Values("Link"))
	}
	return p, nil
}
