package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"k8s.io/klog/v2"

	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// runCentral implements `provtrail central`: the receiving service, and
// its admin subcommands (agents, tokens) that work on the data_dir.
func runCentral(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "agents":
			return runCentralAgents(ctx, args[1:], stdout, stderr)
		case "tokens":
			return runCentralTokens(ctx, args[1:], stdout, stderr)
		}
	}
	fs := newFlagSet("central", "central --config FILE | central agents (list|approve|revoke) | central tokens create", stdout, stderr)
	var path, logLevel, logFormat string
	fs.StringVar(&path, "config", "/etc/provtrail/central.hcl", "central configuration file")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provtrail central: unexpected arguments %v\n", fs.Args())
		return exitUsage
	}
	log, err := newLogger(logLevel, logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail central: %v\n", err)
		return exitUsage
	}
	cfg, code := loadCentralConfig(path, stderr)
	if cfg == nil {
		return code
	}
	if err := checkPrivateFiles(cfg.Path, cfg.TLS.KeyFile, cfg.LogSigner.KeyFile, cfg.LogSigner.PassphraseFile); err != nil {
		fmt.Fprintf(stderr, "provtrail central: %v\n", err)
		return exitUsage
	}
	svc := newDaemonService(log)
	central.ReserveIndexProcs()
	srv, err := central.New(ctx, cfg, central.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "provtrail central: %v\n", err)
		return exitFailure
	}
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "provtrail central: %v\n", err)
		_ = srv.Shutdown(context.Background())
		return exitFailure
	}
	svc.Ready("serving on " + srv.Addr())
	superviseCtx, stopSupervising := context.WithCancel(ctx)
	defer stopSupervising()
	svc.Supervise(superviseCtx, func(ctx context.Context) error { return centralHealthy(ctx, srv) })
	waitErr := make(chan error, 1)
	go func() { waitErr <- srv.Wait() }()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-waitErr:
		log.Error("server stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		fmt.Fprintf(stderr, "provtrail central: shutdown: %v\n", serr)
		return exitFailure
	}
	if err != nil {
		return exitFailure
	}
	return exitOK
}

// newLogger builds the process logger and routes tessera's klog output
// into it.
func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, hopts)
	case "json":
		h = slog.NewJSONHandler(w, hopts)
	default:
		return nil, errors.New("--log-format must be text or json")
	}
	log := slog.New(h)
	routeKlog(log.With("component", "tlog"))
	return log, nil
}

// klogTarget is where tessera's klog output goes. klog's logger is process
// global and may only be set before its users start, so it is set once, to
// a handler that forwards to whatever logger the running subcommand chose.
var (
	klogTarget atomic.Pointer[slog.Logger]
	klogOnce   sync.Once
)

type klogForwarder struct{ attrs []slog.Attr }

func (f klogForwarder) Enabled(ctx context.Context, l slog.Level) bool {
	lg := klogTarget.Load()
	return lg != nil && lg.Handler().Enabled(ctx, l)
}

func (f klogForwarder) Handle(ctx context.Context, r slog.Record) error {
	lg := klogTarget.Load()
	if lg == nil {
		return nil
	}
	r.AddAttrs(f.attrs...)
	return lg.Handler().Handle(ctx, r)
}

func (f klogForwarder) WithAttrs(as []slog.Attr) slog.Handler {
	return klogForwarder{attrs: append(slices.Clip(f.attrs), as...)}
}

func (f klogForwarder) WithGroup(string) slog.Handler { return f }

// routeKlog sends klog (tessera's logging) to log.
func routeKlog(log *slog.Logger) {
	klogTarget.Store(log)
	klogOnce.Do(func() { klog.SetSlogLogger(slog.New(klogForwarder{})) })
}

func loadCentralConfig(path string, stderr io.Writer) (*central.Config, int) {
	cfg, diags := central.LoadConfig(path)
	hclconfig.WriteDiagnostics(stderr, diags)
	if diags.HasErrors() {
		return nil, exitUsage
	}
	return cfg, exitOK
}

// openCentralStore opens the store of the central configured in path for
// a tool: it never indexes (central does), and readOnly ones never write.
func openCentralStore(ctx context.Context, path string, readOnly bool, stderr io.Writer) (*central.SQLite, *central.Config, int) {
	cfg, code := loadCentralConfig(path, stderr)
	if cfg == nil {
		return nil, nil, code
	}
	if _, err := os.Stat(cfg.Central.DataDir); err != nil {
		fmt.Fprintf(stderr, "provtrail: data_dir: %v\n", err)
		return nil, nil, exitFailure
	}
	st, err := central.OpenSQLiteTool(ctx, cfg.Central.DataDir, readOnly)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail: %v\n", err)
		return nil, nil, exitFailure
	}
	return st, cfg, exitOK
}

func runCentralAgents(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("central agents", "central agents [list | approve ID | revoke ID] --config FILE", stdout, stderr)
	var path string
	fs.StringVar(&path, "config", "/etc/provtrail/central.hcl", "central configuration file")
	verb := "list"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		verb, args = args[0], args[1:]
	}
	var id string
	if (verb == "approve" || verb == "revoke") && len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		id, args = args[0], args[1:]
	}
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	switch verb {
	case "list":
	case "approve", "revoke":
		if id == "" {
			fmt.Fprintf(stderr, "provtrail central agents %s: agent ID required\n", verb)
			return exitUsage
		}
	default:
		fmt.Fprintf(stderr, "provtrail central agents: unknown action %q (list, approve, revoke)\n", verb)
		return exitUsage
	}
	st, _, code := openCentralStore(ctx, path, verb == "list", stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	switch verb {
	case "approve", "revoke":
		status := central.AgentActive
		if verb == "revoke" {
			status = central.AgentRevoked
		}
		if err := st.SetAgentStatus(ctx, id, status); err != nil {
			fmt.Fprintf(stderr, "provtrail central agents %s: %v\n", verb, err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "agent %s is now %s\n", id, status)
		return exitOK
	}
	views, err := central.AgentViews(ctx, st)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail central agents: %v\n", err)
		return exitFailure
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tSTATUS\tSOURCE\tLAST SEEN\tSTREAM\tLAST SEQ\tCHAIN\tLAG")
	for _, a := range views {
		seen := "never"
		if !a.LastSeen.IsZero() {
			seen = a.LastSeen.Format(time.RFC3339)
		}
		if len(a.Streams) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\t-\t-\n", a.ID, a.Status, a.Source, seen)
		}
		for _, s := range a.Streams {
			chain := string(s.Chain)
			if s.Detail != "" {
				chain += " (" + s.Detail + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.1fs\n", a.ID, a.Status, a.Source, seen, s.StreamID[:min(12, len(s.StreamID))], s.LastSeq, chain, s.LagSeconds)
		}
	}
	tw.Flush()
	return exitOK
}

func runCentralTokens(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("central tokens", "central tokens create --config FILE [--uses N] [--ttl 24h] [--require-approval] [--note TEXT]", stdout, stderr)
	var path, note string
	var uses int
	var ttl time.Duration
	var approval bool
	fs.StringVar(&path, "config", "/etc/provtrail/central.hcl", "central configuration file")
	fs.IntVar(&uses, "uses", 1, "how many agents may enroll with the token")
	fs.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid (0: no expiry)")
	fs.BoolVar(&approval, "require-approval", false, "agents enrolled with the token wait for `provtrail central agents approve ID`")
	fs.StringVar(&note, "note", "", "free text kept with the token")
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "provtrail central tokens: the only action is create")
		fs.Usage()
		return exitUsage
	}
	if code, done := parseFlags(fs, args[1:], stdout); done {
		return code
	}
	st, _, code := openCentralStore(ctx, path, false, stderr)
	if st == nil {
		return code
	}
	defer st.Close()
	tok, err := central.NewEnrollToken(ctx, st, uses, ttl, approval, note)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail central tokens create: %v\n", err)
		return exitFailure
	}
	// The token goes to stdout alone so that it can be captured; the
	// explanation goes to stderr.
	fmt.Fprintln(stdout, tok)
	fmt.Fprintf(stderr, "enrollment token for %d agent(s), valid %s; run on each host: provtrail enroll --url URL --token-file FILE --id AGENT --key KEYFILE\n", uses, ttlText(ttl))
	return exitOK
}

func ttlText(d time.Duration) string {
	if d <= 0 {
		return "until used up"
	}
	return "for " + d.String()
}
