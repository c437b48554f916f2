package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/agent"
	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/collectors/all"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/hclconfig"
	"github.com/provtrail/provtrail/signer"
)

// authLogCandidates are the auth log paths `provtrail dev` looks for.
var authLogCandidates = []string{"/var/log/auth.log", "/var/log/secure"}

// runDev implements `provtrail dev`: central and an agent in one process on
// this host, with generated keys and a local data dir, central on a
// loopback address. It prints where things are, then each event as it is
// stored, until interrupted.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dev", "dev [--data-dir DIR] [--listen 127.0.0.1:7080] [--auth-log FILE] [--start-at end|beginning]", stdout, stderr)
	var dir, listen, authLog, startAt, logLevel, colls string
	fs.StringVar(&dir, "data-dir", "provtrail-dev", "where keys, configs, central's data and the agent's state go")
	fs.StringVar(&listen, "listen", "127.0.0.1:7080", "central's address (loopback only; plain HTTP in dev mode)")
	fs.StringVar(&authLog, "auth-log", "", "auth log to follow (default: the first of "+strings.Join(authLogCandidates, ", ")+" that exists)")
	fs.StringVar(&startAt, "start-at", "end", "read the auth log from its end (only new changes) or its beginning")
	fs.StringVar(&colls, "collectors", "auto", "host collectors to run: auto (those this host has), or a list of authlog, accounts, auditd, journald")
	fs.StringVar(&logLevel, "log-level", "warn", "log level of central and agent messages (stderr)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "provtrail dev: unexpected arguments %v\n", fs.Args())
		return exitUsage
	}
	if startAt != "end" && startAt != "beginning" {
		fmt.Fprintln(stderr, "provtrail dev: --start-at must be end or beginning")
		return exitUsage
	}
	log, err := newLogger(logLevel, "text", stderr)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail dev: %v\n", err)
		return exitUsage
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail dev: %v\n", err)
		return exitFailure
	}
	if authLog == "" {
		for _, p := range authLogCandidates {
			if _, err := os.Stat(p); err == nil {
				authLog = p
				break
			}
		}
	}
	env, err := prepareDev(dir, listen)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail dev: %v\n", err)
		return exitFailure
	}

	cfg, code := loadCentralConfig(env.centralHCL, stderr)
	if cfg == nil {
		return code
	}
	printer := &devPrinter{w: stdout}
	central.ReserveIndexProcs()
	srv, err := central.New(ctx, cfg, central.Options{Logger: log.With("component", "central"), OnStored: printer.stored})
	if err != nil {
		fmt.Fprintf(stderr, "provtrail dev: %v\n", err)
		return exitFailure
	}
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "provtrail dev: %v\n", err)
		_ = srv.Shutdown(context.Background())
		return exitFailure
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	url := "http://" + srv.Addr()
	paths := authLogCandidates
	if authLog != "" {
		paths = []string{authLog}
	}
	extra, names, err := devHostCollectors(colls, authLog != "")
	if err != nil {
		fmt.Fprintf(stderr, "provtrail dev: --collectors: %v\n", err)
		return exitUsage
	}
	logKey := filepath.Join(cfg.Central.DataDir, central.LogDir, central.LogKeyFile)
	if err := writeDevAgentHCL(env, url, logKey, paths, startAt, extra); err != nil {
		fmt.Fprintf(stderr, "provtrail dev: %v\n", err)
		return exitFailure
	}
	reg := all.Registry()
	acfg, diags := agent.LoadConfig(env.agentHCL, reg)
	hclconfig.WriteDiagnostics(stderr, diags)
	if diags.HasErrors() {
		return exitFailure
	}
	banner := func(string) {
		printer.mu.Lock()
		defer printer.mu.Unlock()
		fmt.Fprintf(stdout, "provtrail dev: central and an agent on this host\n")
		fmt.Fprintf(stdout, "  central        %s (plain HTTP, loopback only)\n", url)
		fmt.Fprintf(stdout, "  data dir       %s\n", dir)
		fmt.Fprintf(stdout, "  configs        %s, %s\n", env.centralHCL, env.agentHCL)
		fmt.Fprintf(stdout, "  keys           %s (dev keys, unencrypted)\n", env.keyDir)
		fmt.Fprintf(stdout, "  log key        %s\n", filepath.Join(cfg.Central.DataDir, central.LogDir, central.LogKeyFile))
		if authLog != "" {
			fmt.Fprintf(stdout, "  following      %s (from its %s)\n", authLog, startAt)
		} else {
			fmt.Fprintf(stdout, "  following      none of %s exists yet; waiting for one to appear\n", strings.Join(authLogCandidates, ", "))
		}
		if len(names) > 0 {
			fmt.Fprintf(stdout, "  also           %s\n", strings.Join(names, ", "))
		}
		fmt.Fprintf(stdout, "  query          provtrail query --config %s [--user U] [--format ndjson]\n", env.centralHCL)
		fmt.Fprintf(stdout, "  verify         provtrail verify --config %s\n", env.centralHCL)
		fmt.Fprintf(stdout, "  agents         curl -s %s/v1/agents\n", url)
		fmt.Fprintf(stdout, "Try: sudo useradd provtrail-demo && sudo userdel provtrail-demo\n")
		fmt.Fprintf(stdout, "Events appear below as central stores them (Ctrl-C stops).\n\n")
	}
	a, err := agent.New(acfg, agent.Options{Registry: reg, Logger: log.With("component", "agent"), Version: version, Ready: banner})
	if err != nil {
		fmt.Fprintf(stderr, "provtrail dev: agent: %v\n", err)
		return exitFailure
	}

	err = a.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "provtrail dev: agent: %v\n", err)
		return exitFailure
	}
	return exitOK
}

type devEnv struct {
	dir, keyDir, centralHCL, agentHCL, agentKey, agentState string
}

// prepareDev creates the dev dir, its keys (once) and central.hcl.
func prepareDev(dir, listen string) (*devEnv, error) {
	e := &devEnv{dir: dir, keyDir: filepath.Join(dir, "keys"), centralHCL: filepath.Join(dir, "central.hcl"),
		agentHCL: filepath.Join(dir, "agent.hcl"), agentState: filepath.Join(dir, "agent")}
	if err := os.MkdirAll(e.keyDir, 0o700); err != nil {
		return nil, err
	}
	for _, name := range []string{"log", "dev-agent"} {
		if _, err := os.Stat(filepath.Join(e.keyDir, name+".key")); err == nil {
			continue
		}
		priv, err := signer.GenerateKey(signer.KeyEd25519)
		if err != nil {
			return nil, err
		}
		if _, _, err := signer.WriteKeyPair(e.keyDir, name, priv, nil); err != nil {
			return nil, fmt.Errorf("write %s key: %w", name, err)
		}
	}
	e.agentKey = filepath.Join(e.keyDir, "dev-agent.key")
	src := fmt.Sprintf(`# Written by provtrail dev. Dev mode: plain HTTP on loopback only.
central {
  listen   = %q
  data_dir = %q
  audience = "provtrail-dev"
  dev      = true
}

log_signer {
  key_file = %q
  origin   = "provtrail-dev/log"
}

agent "dev" {
  public_key_file = %q
}
`, listen, filepath.Join(dir, "central"), filepath.Join(e.keyDir, "log.key"), filepath.Join(e.keyDir, "dev-agent.pub"))
	if err := os.WriteFile(e.centralHCL, []byte(src), 0o600); err != nil {
		return nil, err
	}
	return e, nil
}

// devHostCollectors returns the extra collector blocks (beyond authlog)
// for `provtrail dev` and their descriptions.
func devHostCollectors(list string, haveAuthLog bool) (string, []string, error) {
	want := map[string]bool{}
	auto := list == "auto"
	if !auto {
		for _, n := range strings.Split(list, ",") {
			switch n = strings.TrimSpace(n); n {
			case "authlog", "accounts", "auditd", "journald":
				want[n] = true
			case "":
			default:
				return "", nil, fmt.Errorf("unknown host collector %q", n)
			}
		}
	}
	var b strings.Builder
	var names []string
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	if want["accounts"] || (auto && exists("/etc/passwd")) {
		b.WriteString("\ncollector \"accounts\" \"local\" {\n  root = \"/\"\n}\n")
		names = append(names, "accounts (/etc/passwd, group, shadow, sudoers)")
	}
	const auditLog = "/var/log/audit/audit.log"
	if want["auditd"] || (auto && exists(auditLog)) {
		fmt.Fprintf(&b, "\ncollector \"auditd\" \"local\" {\n  path = %q\n  start_at = \"end\"\n}\n", auditLog)
		names = append(names, "auditd ("+auditLog+")")
	}
	// The journal carries the same syslog lines as the auth log: read it
	// only where there is no auth log file.
	if want["journald"] || (auto && !haveAuthLog && exists("/usr/bin/journalctl")) {
		b.WriteString("\ncollector \"journald\" \"local\" {\n  start_at = \"end\"\n}\n")
		names = append(names, "journald")
	}
	return b.String(), names, nil
}

func writeDevAgentHCL(e *devEnv, url, logKey string, paths []string, startAt, extra string) error {
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	src := fmt.Sprintf(`# Written by provtrail dev.
agent {
  id        = "dev"
  state_dir = %q
}

signer {
  key_file = %q
}

forward {
  url            = %q
  audience       = "provtrail-dev"
  batch_max_wait = "200ms"
  # Check every acknowledged batch's inclusion in central's log.
  log_key_file   = %q
  proof_interval = "5s"
}

collector "authlog" "system" {
  paths       = [%s]
  start_at    = %q
  flush_after = "200ms"
}
`, e.agentState, e.agentKey, url, logKey, strings.Join(quoted, ", "), startAt) + extra
	return os.WriteFile(e.agentHCL, []byte(src), 0o600)
}

// devPrinter prints stored events, one line each.
type devPrinter struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *devPrinter) stored(_ context.Context, b central.Batch, events []central.StoredEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, se := range events {
		var e event.Event
		if err := json.Unmarshal(se.JSON, &e); err != nil {
			fmt.Fprintf(p.w, "%s  (unparsed event in batch %d of %s)\n", time.Now().Format("15:04:05"), b.Seq, b.AgentID)
			continue
		}
		target := ""
		if u := e.Target.User; u != nil {
			target = firstOf(u.Name, u.ID)
		}
		if g := e.Target.Group; g != nil {
			target = strings.TrimPrefix(target+" in "+firstOf(g.Name, g.ID), " in ")
		}
		if len(e.Target.Privileges) > 0 {
			target += " [" + strings.Join(e.Target.Privileges, ",") + "]"
		}
		fmt.Fprintf(p.w, "%s  %-20s %-8s by %-12s %s  (%s, log index %d)\n", e.Time.Local().Format("15:04:05"), e.Action, e.Outcome,
			clean(firstOf(e.Actor.Name, e.Actor.ID)), clean(target), clean(e.Origin.Host), b.LogIndex)
	}
}
