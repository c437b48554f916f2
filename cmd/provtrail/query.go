package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/event"
)

// runQuery implements `provtrail query`: events from central's store (with
// --config) or from a running central (with --url), oldest first; and
// `provtrail query alerts|entitlements|drift` (query_alerts.go).
func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "alerts":
			return runQueryAlerts(ctx, args[1:], stdout, stderr)
		case "entitlements":
			return runQueryEntitlements(ctx, args[1:], stdout, stderr, false)
		case "drift":
			return runQueryEntitlements(ctx, args[1:], stdout, stderr, true)
		}
	}
	fs := newFlagSet("query", "query (--config central.hcl | --url URL [--ca FILE]) [--actor A] [--user U] [--group G] [--action A] [--system S] [--host H] [--since T] [--until T] [--format table|ndjson] [--limit N]", stdout, stderr)
	var path, base, caFile, format, since, until string
	var q central.EventQuery
	var limit int
	fs.StringVar(&path, "config", "", "central configuration file (read the store in its data_dir)")
	fs.StringVar(&base, "url", "", "query a running central over HTTPS instead")
	fs.StringVar(&caFile, "ca", "", "CA certificate for --url (default: system roots)")
	fs.StringVar(&q.Actor, "actor", "", "who made the change (name or id)")
	fs.StringVar(&q.User, "user", "", "target user (name or id)")
	fs.StringVar(&q.Group, "group", "", "target group or privilege")
	fs.StringVar(&q.Action, "action", "", "action, e.g. group.member.add")
	fs.StringVar(&q.System, "system", "", "origin system kind, e.g. linux, openldap, aws")
	fs.StringVar(&q.Host, "host", "", "origin host")
	fs.StringVar(&since, "since", "", "from this time: RFC 3339, or a duration back from now (24h)")
	fs.StringVar(&until, "until", "", "before this time: RFC 3339, or a duration back from now")
	fs.StringVar(&format, "format", "table", "table or ndjson")
	fs.IntVar(&limit, "limit", 0, "stop after N events (0: all)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provtrail query: unexpected arguments %v\n", fs.Args())
		return exitUsage
	}
	if (path == "") == (base == "") {
		fmt.Fprintln(stderr, "provtrail query: give exactly one of --config and --url")
		return exitUsage
	}
	if format != "table" && format != "ndjson" {
		fmt.Fprintln(stderr, "provtrail query: --format must be table or ndjson")
		return exitUsage
	}
	now := time.Now()
	var err error
	if q.Since, err = parseWhen(since, now); err != nil {
		fmt.Fprintf(stderr, "provtrail query: --since: %v\n", err)
		return exitUsage
	}
	if q.Until, err = parseWhen(until, now); err != nil {
		fmt.Fprintf(stderr, "provtrail query: --until: %v\n", err)
		return exitUsage
	}

	var next func(ctx context.Context, q central.EventQuery) ([][]byte, string, error)
	if path != "" {
		st, _, code := openCentralStore(ctx, path, true, stderr)
		if st == nil {
			return code
		}
		defer st.Close()
		next = func(ctx context.Context, q central.EventQuery) ([][]byte, string, error) {
			page, err := st.QueryEvents(ctx, q)
			if err != nil {
				return nil, "", err
			}
			out := make([][]byte, len(page.Events))
			for i, e := range page.Events {
				out[i] = e.JSON
			}
			return out, page.Next, nil
		}
	} else {
		c, err := httpClient(caFile)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail query: %v\n", err)
			return exitUsage
		}
		next = func(ctx context.Context, q central.EventQuery) ([][]byte, string, error) {
			return queryHTTP(ctx, c, base, q)
		}
	}

	out := newEventPrinter(stdout, format)
	n := 0
	for {
		if limit > 0 {
			q.Limit = min(limit-n, central.MaxQueryLimit)
		}
		events, cursor, err := next(ctx, q)
		if err != nil {
			out.flush()
			fmt.Fprintf(stderr, "provtrail query: %v\n", err)
			return exitFailure
		}
		for _, e := range events {
			out.print(e)
			n++
		}
		if cursor == "" || (limit > 0 && n >= limit) {
			break
		}
		q.After = cursor
	}
	out.flush()
	if format == "table" {
		fmt.Fprintf(stderr, "%d events\n", n)
	}
	return exitOK
}

func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a date (2006-01-02) nor a duration (24h)", s)
}

func httpClient(caFile string) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no certificates", caFile)
		}
		tc.RootCAs = pool
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}, nil
}

func queryHTTP(ctx context.Context, c *http.Client, base string, q central.EventQuery) ([][]byte, string, error) {
	v := url.Values{}
	for k, s := range map[string]string{"actor": q.Actor, "user": q.User, "group": q.Group, "action": q.Action, "system": q.System, "host": q.Host, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", fmt.Sprint(q.Limit))
	} else {
		v.Set("limit", fmt.Sprint(central.MaxQueryLimit))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/events?"+v.Encode(), nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var page central.EventsResponse
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, "", fmt.Errorf("events response: %w", err)
	}
	out := make([][]byte, len(page.Events))
	for i, e := range page.Events {
		out[i] = e
	}
	return out, page.Next, nil
}

// eventPrinter writes events as a table or NDJSON.
type eventPrinter struct {
	w      io.Writer
	tw     *tabwriter.Writer
	format string
	header bool
}

func newEventPrinter(w io.Writer, format string) *eventPrinter {
	p := &eventPrinter{w: w, format: format}
	if format == "table" {
		p.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	}
	return p
}

func (p *eventPrinter) print(raw []byte) {
	if p.format == "ndjson" {
		p.w.Write(raw)
		p.w.Write([]byte{'\n'})
		return
	}
	if !p.header {
		fmt.Fprintln(p.tw, "TIME\tACTION\tOUTCOME\tACTOR\tTARGET\tGROUP/PRIVILEGE\tHOST\tSYSTEM")
		p.header = true
	}
	var e event.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		fmt.Fprintf(p.tw, "-\t(unparsed event)\t\t\t\t\t\t\n")
		return
	}
	target, group := "", ""
	if u := e.Target.User; u != nil {
		target = firstOf(u.Name, u.ID)
	}
	if g := e.Target.Group; g != nil {
		group = firstOf(g.Name, g.ID)
	}
	if len(e.Target.Privileges) > 0 {
		group = strings.TrimPrefix(group+","+strings.Join(e.Target.Privileges, ","), ",")
	}
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Action, e.Outcome,
		clean(firstOf(e.Actor.Name, e.Actor.ID)), clean(target), clean(group), clean(e.Origin.Host), clean(e.Origin.System))
}

func (p *eventPrinter) flush() {
	if p.tw != nil {
		p.tw.Flush()
	}
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// clean keeps table cells on one line and printable.
func clean(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
