package alerts

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// NotifierConfig is one notifier "TYPE" "NAME" block.
type NotifierConfig struct {
	Type, Name string
	// Webhook.
	URL    string
	Format string // json, slack or pagerduty
	// RoutingKey is PagerDuty's integration key.
	RoutingKey string
	Headers    map[string]string
	// Syslog.
	Address  string
	TLS      bool
	CAFile   string
	Facility int
	AppName  string
	// File.
	Path    string
	Timeout time.Duration
}

type notifierBlock struct {
	URL        *string           `hcl:"url,optional"`
	Format     *string           `hcl:"format,optional"`
	RoutingKey *string           `hcl:"routing_key,optional"`
	Headers    map[string]string `hcl:"headers,optional"`
	Address    *string           `hcl:"address,optional"`
	TLS        *bool             `hcl:"tls,optional"`
	CAFile     *string           `hcl:"ca_file,optional"`
	Facility   *string           `hcl:"facility,optional"`
	AppName    *string           `hcl:"app_name,optional"`
	Path       *string           `hcl:"path,optional"`
	Timeout    hcl.Expression    `hcl:"timeout,optional"`
}

var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

func decodeNotifier(b *hcl.Block, ctx *hcl.EvalContext) (*NotifierConfig, hcl.Diagnostics) {
	var nb notifierBlock
	diags := gohcl.DecodeBody(b.Body, ctx, &nb)
	if diags.HasErrors() {
		return nil, diags
	}
	s := func(p *string, def string) string {
		if p == nil {
			return def
		}
		return *p
	}
	n := &NotifierConfig{Type: b.Labels[0], Name: b.Labels[1], Headers: nb.Headers}
	var d hcl.Diagnostics
	n.Timeout, d = hclconfig.Duration(nb.Timeout, ctx, 10*time.Second)
	diags = append(diags, d...)
	bad := func(detail string) {
		diags = append(diags, hclconfig.Error(b.DefRange, "Invalid notifier", fmt.Sprintf("notifier %q %q: %s", n.Type, n.Name, detail)))
	}
	switch n.Type {
	case "webhook":
		n.URL, n.Format, n.RoutingKey = s(nb.URL, ""), s(nb.Format, "json"), s(nb.RoutingKey, "")
		if u, err := url.Parse(n.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("url must be an http(s) URL.")
		}
		switch n.Format {
		case "json", "slack":
		case "pagerduty":
			if n.RoutingKey == "" {
				bad("format \"pagerduty\" needs routing_key.")
			}
		default:
			bad(fmt.Sprintf("format %q is not json, slack or pagerduty.", n.Format))
		}
	case "syslog":
		n.Address, n.TLS, n.CAFile, n.AppName = s(nb.Address, ""), nb.TLS != nil && *nb.TLS, s(nb.CAFile, ""), s(nb.AppName, "provtrail")
		if _, _, err := net.SplitHostPort(n.Address); err != nil {
			bad("address must be host:port.")
		}
		fac, ok := syslogFacilities[s(nb.Facility, "authpriv")]
		if !ok {
			bad(fmt.Sprintf("facility %q is not a syslog facility name.", s(nb.Facility, "")))
		}
		n.Facility = fac
	case "file":
		n.Path = s(nb.Path, "")
		if n.Path == "" {
			bad("path is required.")
		}
	default:
		diags = append(diags, hclconfig.Error(b.LabelRanges[0], "Unknown notifier type",
			fmt.Sprintf("%q is not webhook, syslog or file.", n.Type)))
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return n, diags
}

// notifier delivers one alert, once; the dispatcher retries.
type notifier interface {
	notify(ctx context.Context, a Alert) error
	close() error
}

func newNotifier(c NotifierConfig) (notifier, error) {
	switch c.Type {
	case "webhook":
		return &webhook{cfg: c, client: &http.Client{Timeout: c.Timeout}}, nil
	case "syslog":
		s := &syslogNotifier{cfg: c}
		if c.TLS {
			s.tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
			if c.CAFile != "" {
				pem, err := os.ReadFile(c.CAFile)
				if err != nil {
					return nil, fmt.Errorf("read ca_file: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile)
				}
				s.tlsConf.RootCAs = pool
			}
		}
		return s, nil
	case "file":
		return &fileNotifier{path: c.Path}, nil
	}
	return nil, fmt.Errorf("unknown notifier type %q", c.Type)
}

type webhook struct {
	cfg    NotifierConfig
	client *http.Client
}

func (w *webhook) notify(ctx context.Context, a Alert) error {
	var payload any = a
	switch w.cfg.Format {
	case "slack":
		payload = map[string]any{"text": fmt.Sprintf("[%s] %s (%s)", strings.ToUpper(a.Severity), a.Summary, a.Rule)}
	case "pagerduty":
		sev := map[string]string{"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}[a.Severity]
		if sev == "" {
			sev = "warning"
		}
		payload = map[string]any{
			"routing_key": w.cfg.RoutingKey, "event_action": "trigger", "dedup_key": a.ID,
			"payload": map[string]any{
				"summary": a.Summary, "source": "provtrail-central", "severity": sev,
				"timestamp": a.Time.Format(time.RFC3339Nano), "component": a.Agent, "class": a.Rule,
				"custom_details": a,
			},
		}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "provtrail-central")
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func (w *webhook) close() error { return nil }

// syslogNotifier sends RFC 5424 messages over TCP (RFC 6587 octet
// counting) or TLS (RFC 5425), keeping the connection between alerts.
type syslogNotifier struct {
	cfg     NotifierConfig
	tlsConf *tls.Config
	mu      sync.Mutex
	conn    net.Conn
}

func (s *syslogNotifier) notify(ctx context.Context, a Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		d := &net.Dialer{Timeout: s.cfg.Timeout}
		var conn net.Conn
		var err error
		if s.tlsConf != nil {
			td := &tls.Dialer{NetDialer: d, Config: s.tlsConf}
			conn, err = td.DialContext(ctx, "tcp", s.cfg.Address)
		} else {
			conn, err = d.DialContext(ctx, "tcp", s.cfg.Address)
		}
		if err != nil {
			return fmt.Errorf("connect syslog %s: %w", s.cfg.Address, err)
		}
		s.conn = conn
	}
	msg := formatRFC5424(s.cfg, a)
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
	if _, err := fmt.Fprintf(s.conn, "%d %s", len(msg), msg); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("write syslog %s: %w", s.cfg.Address, err)
	}
	return nil
}

func (s *syslogNotifier) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}

func formatRFC5424(c NotifierConfig, a Alert) string {
	sev := map[string]int{"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}[a.Severity]
	if sev == 0 {
		sev = 4
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "-"
	}
	sd := fmt.Sprintf(`[provtrail@32473 id="%s" rule="%s" severity="%s"]`, sdEscape(a.ID), sdEscape(a.Rule), sdEscape(a.Severity))
	return fmt.Sprintf("<%d>1 %s %s %s - alert %s %s", c.Facility*8+sev, a.Time.UTC().Format(time.RFC3339Nano),
		host, c.AppName, sd, a.Summary)
}

func sdEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`).Replace(s)
}

// fileNotifier appends alerts as JSON lines and syncs each.
type fileNotifier struct {
	mu   sync.Mutex
	path string
}

func (f *fileNotifier) notify(_ context.Context, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fh, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open alert file: %w", err)
	}
	if _, err := fh.Write(append(b, '\n')); err != nil {
		fh.Close()
		return fmt.Errorf("write alert file %s: %w", f.path, err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return fmt.Errorf("sync alert file %s: %w", f.path, err)
	}
	return fh.Close()
}

func (f *fileNotifier) close() error { return nil }

// RetryPolicy says how often and how patiently a notification is retried.
type RetryPolicy struct {
	Attempts int
	Initial  time.Duration
	Max      time.Duration
}

// DefaultRetry retries for about a minute and a half.
var DefaultRetry = RetryPolicy{Attempts: 8, Initial: 500 * time.Millisecond, Max: 30 * time.Second}

// dispatcher delivers one notifier's alerts in order from a bounded queue.
type dispatcher struct {
	name   string
	n      notifier
	retry  RetryPolicy
	engine *Engine
	queue  chan Alert
	cancel context.CancelFunc
	done   chan struct{}
	// mu guards closing queue: another dispatcher's loop may enqueue a
	// notifier-failing alert here while the engine is stopping this one.
	mu     sync.Mutex
	closed bool
	// failing is set after a notification was given up, and cleared by the
	// next success, so a broken notifier raises one alert, not one per alert.
	failing bool
}

func startDispatcher(name string, n notifier, retry RetryPolicy, e *Engine) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dispatcher{name: name, n: n, retry: retry, engine: e, queue: make(chan Alert, 1024), cancel: cancel, done: make(chan struct{})}
	go d.loop(ctx)
	return d
}

func (d *dispatcher) enqueue(a Alert) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		d.engine.log.Warn("notifier stopped; alert stored but not sent", "notifier", d.name, "alert_id", a.ID)
		return
	}
	select {
	case d.queue <- a:
	default:
		// The alert is stored already; only its delivery is lost.
		d.engine.metrics.notifyFail.WithLabelValues(d.name).Inc()
		d.engine.log.Error("notifier queue full; alert stored but not sent", "notifier", d.name, "alert_id", a.ID)
	}
}

func (d *dispatcher) stop() {
	d.mu.Lock()
	d.closed = true
	close(d.queue)
	d.mu.Unlock()
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cancel()
		<-d.done
	}
	d.cancel()
	_ = d.n.close()
}

func (d *dispatcher) loop(ctx context.Context) {
	defer close(d.done)
	for a := range d.queue {
		d.deliver(ctx, a)
	}
}

func (d *dispatcher) deliver(ctx context.Context, a Alert) {
	wait := d.retry.Initial
	var err error
	for attempt := 1; attempt <= d.retry.Attempts; attempt++ {
		if err = d.n.notify(ctx, a); err == nil {
			d.engine.metrics.notifyOK.WithLabelValues(d.name).Inc()
			d.failing = false
			return
		}
		d.engine.metrics.notifyFail.WithLabelValues(d.name).Inc()
		d.engine.log.Warn("notification failed; will retry", "notifier", d.name, "alert_id", a.ID, "attempt", attempt, "err", err)
		if attempt == d.retry.Attempts {
			break
		}
		jittered := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(jittered):
		}
		wait = min(2*wait, d.retry.Max)
	}
	d.engine.log.Error("notifier keeps failing; alert stored but not delivered", "notifier", d.name, "alert_id", a.ID, "err", err)
	if !d.failing && a.Rule != BuiltinNotifierFailing {
		d.failing = true
		nf := Alert{Rule: BuiltinNotifierFailing, Builtin: true, Severity: "high", Key: d.name,
			Summary: fmt.Sprintf("notifier %q failed to deliver alert %s after %d attempts: %v", d.name, a.ID, d.retry.Attempts, err),
			Details: map[string]string{"notifier": d.name, "alert_id": a.ID}}
		nf.Time = d.engine.now().UTC()
		nf.ID = a.ID + "-nf"
		if d.engine.sink != nil {
			if serr := d.engine.sink.SaveAlert(ctx, nf); serr != nil {
				d.engine.log.Error("store notifier-failing alert", "err", serr)
			}
		}
		for name, other := range d.engine.notifiers {
			if name != d.name {
				other.enqueue(nf)
			}
		}
	}
}
