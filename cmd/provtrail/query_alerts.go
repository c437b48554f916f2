package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/central/entitlements"
)

// querySource is where `provtrail query alerts|entitlements|drift` reads:
// central's store (--config) or a running central (--url).
type querySource struct {
	path, base, caFile string
}

func (q *querySource) flags(fs interface {
	StringVar(p *string, name, value, usage string)
}) {
	fs.StringVar(&q.path, "config", "", "central configuration file (read the store in its data_dir)")
	fs.StringVar(&q.base, "url", "", "query a running central over HTTPS instead")
	fs.StringVar(&q.caFile, "ca", "", "CA certificate for --url (default: system roots)")
}

func (q *querySource) check(cmd string, stderr io.Writer) bool {
	if (q.path == "") == (q.base == "") {
		fmt.Fprintf(stderr, "provtrail %s: give exactly one of --config and --url\n", cmd)
		return false
	}
	return true
}

// getJSON GETs path from the running central into v.
func (q *querySource) do(ctx context.Context, method, path string, v any) error {
	c, err := httpClient(q.caFile)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(q.base, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}

// runQueryAlerts implements `provtrail query alerts [...]` and
// `provtrail query alerts ack ID`.
func runQueryAlerts(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("query alerts", "query alerts (--config central.hcl | --url URL [--ca FILE]) [--rule R] [--severity S] [--open | --acknowledged] [--since T] [--limit N] [--format table|json]\n       provtrail query alerts ack ID (--config central.hcl | --url URL)", stdout, stderr)
	var src querySource
	src.flags(fs)
	var rule, severity, since, format string
	var open, acked bool
	var limit int
	fs.StringVar(&rule, "rule", "", "rule name or built-in (e.g. builtin.silent_agent, fork, gap)")
	fs.StringVar(&severity, "severity", "", "critical, high, medium, low or info")
	fs.BoolVar(&open, "open", false, "only alerts not acknowledged")
	fs.BoolVar(&acked, "acknowledged", false, "only acknowledged alerts")
	fs.StringVar(&since, "since", "", "from this time: RFC 3339, or a duration back from now (24h)")
	fs.IntVar(&limit, "limit", 100, "newest N alerts")
	fs.StringVar(&format, "format", "table", "table or json (one alert per line)")
	var ackID string
	if len(args) >= 2 && args[0] == "ack" {
		ackID, args = args[1], args[2:]
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if rest := fs.Args(); ackID == "" && len(rest) == 2 && rest[0] == "ack" {
		ackID = rest[1]
	} else if len(rest) > 0 {
		fmt.Fprintf(stderr, "provtrail query alerts: unexpected arguments %v\n", rest)
		return exitUsage
	}
	if !src.check("query alerts", stderr) {
		return exitUsage
	}
	if format != "table" && format != "json" {
		fmt.Fprintln(stderr, "provtrail query alerts: --format must be table or json")
		return exitUsage
	}
	if ackID != "" {
		var a central.AlertView
		if src.path != "" {
			st, _, code := openCentralStore(ctx, src.path, false, stderr)
			if st == nil {
				return code
			}
			defer st.Close()
			stored, err := st.AckAlert(ctx, ackID, "cli", time.Now())
			if errors.Is(err, central.ErrNotFound) {
				fmt.Fprintf(stderr, "provtrail query alerts ack: no alert %q\n", ackID)
				return exitFailure
			}
			if err != nil {
				fmt.Fprintf(stderr, "provtrail query alerts ack: %v\n", err)
				return exitFailure
			}
			a = central.NewAlertView(stored)
		} else if err := src.do(ctx, http.MethodPost, "/v1/alerts/"+url.PathEscape(ackID)+"/ack", &a); err != nil {
			fmt.Fprintf(stderr, "provtrail query alerts ack: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "alert %d (%s) acknowledged at %s by %s\n", a.ID, a.Rule, a.AckedAt.Local().Format(time.RFC3339), a.AckedBy)
		return exitOK
	}
	if open && acked {
		fmt.Fprintln(stderr, "provtrail query alerts: give at most one of --open and --acknowledged")
		return exitUsage
	}
	q := central.AlertQuery{Rule: rule, Severity: severity, Limit: limit}
	if open || acked {
		q.Acknowledged = &acked
	}
	var err error
	if q.Since, err = parseWhen(since, time.Now()); err != nil {
		fmt.Fprintf(stderr, "provtrail query alerts: --since: %v\n", err)
		return exitUsage
	}
	var views []central.AlertView
	if src.path != "" {
		st, _, code := openCentralStore(ctx, src.path, true, stderr)
		if st == nil {
			return code
		}
		defer st.Close()
		al, err := st.QueryAlerts(ctx, q)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail query alerts: %v\n", err)
			return exitFailure
		}
		for _, a := range al {
			views = append(views, central.NewAlertView(a))
		}
	} else {
		v := url.Values{}
		for k, s := range map[string]string{"rule": q.Rule, "severity": q.Severity, "limit": fmt.Sprint(q.Limit)} {
			if s != "" {
				v.Set(k, s)
			}
		}
		if q.Acknowledged != nil {
			v.Set("acknowledged", fmt.Sprint(*q.Acknowledged))
		}
		if !q.Since.IsZero() {
			v.Set("since", q.Since.Format(time.RFC3339Nano))
		}
		var resp central.AlertsResponse
		if err := src.do(ctx, http.MethodGet, "/v1/alerts?"+v.Encode(), &resp); err != nil {
			fmt.Fprintf(stderr, "provtrail query alerts: %v\n", err)
			return exitFailure
		}
		views = resp.Alerts
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		for _, a := range views {
			enc.Encode(a)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tSEVERITY\tRULE\tAGENT\tACK\tEVENTS\tMESSAGE")
	for _, a := range views {
		ack := "-"
		if a.Acknowledged {
			ack = a.AckedAt.Local().Format("2006-01-02 15:04")
		}
		var evs []string
		for _, e := range a.Events {
			evs = append(evs, fmt.Sprintf("%s@%d", e.ID, e.LogIndex))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Time.Local().Format("2006-01-02 15:04:05"), a.Severity, clean(a.Rule),
			clean(a.Agent), ack, clean(truncateList(evs, 3)), clean(a.Message))
	}
	tw.Flush()
	fmt.Fprintf(stderr, "%d alerts\n", len(views))
	return exitOK
}

func truncateList(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ",")
	}
	return strings.Join(s[:n], ",") + fmt.Sprintf(",+%d", len(s)-n)
}

// runQueryEntitlements implements `provtrail query entitlements` (who
// holds what now) and `provtrail query drift` (granted between two dates
// and still held).
func runQueryEntitlements(ctx context.Context, args []string, stdout, stderr io.Writer, drift bool) int {
	name, usage := "query entitlements", "query entitlements (--config central.hcl | --url URL [--ca FILE]) [--group G] [--user U] [--system S] [--format table|json]"
	if drift {
		name, usage = "query drift", "query drift (--config central.hcl | --url URL [--ca FILE]) --from T --to T [--format table|json]"
	}
	fs := newFlagSet(name, usage, stdout, stderr)
	var src querySource
	src.flags(fs)
	var q central.EntitlementQuery
	var from, to, format string
	if drift {
		fs.StringVar(&from, "from", "", "start: RFC 3339 time, date (2006-01-02) or duration back from now")
		fs.StringVar(&to, "to", "", "end (exclusive): RFC 3339 time, date or duration back from now; default now")
	} else {
		fs.StringVar(&q.Group, "group", "", "group or privilege name")
		fs.StringVar(&q.User, "user", "", "user name")
		fs.StringVar(&q.System, "system", "", "origin system kind, e.g. linux, openldap, aws")
	}
	fs.StringVar(&format, "format", "table", "table or json (one holding per line)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provtrail %s: unexpected arguments %v\n", name, fs.Args())
		return exitUsage
	}
	if !src.check(name, stderr) {
		return exitUsage
	}
	if format != "table" && format != "json" {
		fmt.Fprintf(stderr, "provtrail %s: --format must be table or json\n", name)
		return exitUsage
	}
	var fromT, toT time.Time
	if drift {
		now := time.Now()
		var err error
		if fromT, err = parseWhen(from, now); err != nil || from == "" {
			fmt.Fprintf(stderr, "provtrail query drift: --from is required (RFC 3339, date or duration): %v\n", err)
			return exitUsage
		}
		if toT, err = parseWhen(to, now); err != nil {
			fmt.Fprintf(stderr, "provtrail query drift: --to: %v\n", err)
			return exitUsage
		}
		if toT.IsZero() {
			toT = now
		}
		if !fromT.Before(toT) {
			fmt.Fprintln(stderr, "provtrail query drift: --from must be before --to")
			return exitUsage
		}
	}
	var hs []entitlements.Holding
	if src.path != "" {
		st, _, code := openCentralStore(ctx, src.path, true, stderr)
		if st == nil {
			return code
		}
		defer st.Close()
		var err error
		if drift {
			hs, err = st.EntitlementDrift(ctx, fromT, toT)
		} else {
			hs, err = st.Entitlements(ctx, q)
		}
		if err != nil {
			fmt.Fprintf(stderr, "provtrail %s: %v\n", name, err)
			return exitFailure
		}
	} else {
		v := url.Values{}
		path := "/v1/entitlements?"
		if drift {
			path = "/v1/entitlements/drift?"
			v.Set("from", fromT.Format(time.RFC3339Nano))
			v.Set("to", toT.Format(time.RFC3339Nano))
		}
		for k, s := range map[string]string{"group": q.Group, "user": q.User, "system": q.System} {
			if s != "" {
				v.Set(k, s)
			}
		}
		var resp central.EntitlementsResponse
		if err := src.do(ctx, http.MethodGet, path+v.Encode(), &resp); err != nil {
			fmt.Fprintf(stderr, "provtrail %s: %v\n", name, err)
			return exitFailure
		}
		hs = resp.Entitlements
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		for _, h := range hs {
			enc.Encode(h)
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SYSTEM\tSCOPE\tKIND\tNAME\tUSER\tSINCE\tGRANTED BY\tEVENT\tLOG INDEX")
	for _, h := range hs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", clean(h.System), clean(h.Scope), h.Kind, clean(h.Name), clean(h.User),
			h.Since.Local().Format("2006-01-02 15:04:05"), clean(h.GrantedBy), clean(h.EventID), h.LogIndex)
	}
	tw.Flush()
	fmt.Fprintf(stderr, "%d entitlements\n", len(hs))
	return exitOK
}
