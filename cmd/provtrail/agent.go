package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/provtrail/provtrail/agent"
	pcollectors "github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/all"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// runAgent runs the host agent until SIGTERM/SIGINT (ctx), reloading the
// collector blocks of its config on SIGHUP.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("agent", "agent --config FILE [--check]", stdout, stderr)
	var path, logLevel, logFormat string
	var check bool
	var drain time.Duration
	var cpuProfile, memLimit string
	fs.StringVar(&path, "config", "/etc/provtrail/agent.hcl", "agent configuration file")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	fs.DurationVar(&drain, "drain-timeout", agent.DefaultDrainTimeout, "how long a shutdown may take to seal and deliver what is pending")
	fs.StringVar(&memLimit, "memory-limit", "24MiB", "soft limit for the Go heap, so the agent stays small on busy hosts (GOMEMLIMIT, when set, wins; 0 = none)")
	fs.BoolVar(&check, "check", false, "print what the agent would collect and whether it can read each source, load its key and reach central; then exit (0: all good, 1: a problem)")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a Go CPU profile of the whole run to this file (performance analysis)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provtrail agent: unexpected arguments %v\n", fs.Args())
		return exitUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(stderr, "provtrail agent: --log-level: %v\n", err)
		return exitUsage
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, hopts)
	if logFormat == "json" {
		h = slog.NewJSONHandler(stderr, hopts)
	} else if logFormat != "text" {
		fmt.Fprintf(stderr, "provtrail agent: --log-format must be text or json\n")
		return exitUsage
	}
	log := slog.New(h)

	if os.Getenv("GOMEMLIMIT") == "" && memLimit != "0" {
		n, err := hclconfig.ParseSize(memLimit)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail agent: --memory-limit: %v\n", err)
			return exitUsage
		}
		debug.SetMemoryLimit(n)
	}
	if cpuProfile != "" {
		pf, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail agent: --cpuprofile: %v\n", err)
			return exitUsage
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintf(stderr, "provtrail agent: --cpuprofile: %v\n", err)
			return exitFailure
		}
		defer pprof.StopCPUProfile()
	}
	reg := all.Registry()
	cfg, diags := agent.LoadConfig(path, reg)
	hclconfig.WriteDiagnostics(stderr, diags)
	if diags.HasErrors() {
		return exitUsage
	}
	if err := checkPrivateFiles(cfg.Path, cfg.Signer.KeyFile, cfg.Signer.PassphraseFile, cfg.Forward.KeyFile); err != nil {
		fmt.Fprintf(stderr, "provtrail agent: %v\n", err)
		return exitUsage
	}
	if check {
		return printCheck(ctx, cfg, reg, log, stdout)
	}
	svc := newDaemonService(log)
	ready := func(string) { svc.Ready(fmt.Sprintf("running %d collectors", len(cfg.Collectors))) }
	a, err := agent.New(cfg, agent.Options{Registry: reg, Logger: log, DrainTimeout: drain, Version: version, Ready: ready})
	if err != nil {
		fmt.Fprintf(stderr, "provtrail agent: %v\n", err)
		return exitFailure
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	svc.Supervise(runCtx, nil)
	go func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading configuration", "config", path)
				svc.Reloading()
				ncfg, diags := agent.LoadConfig(path, reg)
				if diags.HasErrors() {
					var b strings.Builder
					hclconfig.WriteDiagnostics(&b, diags)
					log.Error("reload: configuration has errors; keeping the running one", "diagnostics", b.String())
					svc.Ready("reload failed: configuration has errors; running the previous one")
					continue
				}
				if err := checkPrivateFiles(ncfg.Path, ncfg.Signer.KeyFile, ncfg.Signer.PassphraseFile, ncfg.Forward.KeyFile); err != nil {
					log.Error("reload: keeping the running configuration", "err", err)
					svc.Ready("reload refused: file permissions; running the previous configuration")
					continue
				}
				if err := a.Reload(runCtx, ncfg); err != nil {
					log.Error("reload", "err", err)
				}
				svc.Ready(fmt.Sprintf("running %d collectors", len(ncfg.Collectors)))
			}
		}
	}()
	if err := a.Run(runCtx); err != nil {
		log.Error("agent failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// printCheck runs agent.Check and prints one line per finding.
func printCheck(ctx context.Context, cfg *agent.Config, reg *pcollectors.Registry, log *slog.Logger, stdout io.Writer) int {
	results := agent.Check(ctx, cfg, reg, agent.Options{Registry: reg, Logger: log})
	code := exitOK
	for _, r := range results {
		mark := "ok  "
		if !r.OK {
			mark = "FAIL"
			code = exitFailure
		}
		fmt.Fprintf(stdout, "%s %s: %s\n", mark, r.What, r.Detail)
	}
	return code
}
