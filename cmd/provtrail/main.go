// Command provtrail is the agent, the central service and the tools around
// them (validate, parse, keygen, enroll, query, verify) in one binary.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// Exit codes shared by every subcommand.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"version":  {"print version, commit and Go version", runVersion},
		"agent":    {"run the host agent: collect, sign, spool and forward provisioning events", runAgent},
		"validate": {"check agent.hcl or central.hcl and print FILE:LINE:COL diagnostics", runValidate},
		"parse":    {"run one collector's parser over files or stdin and print events as NDJSON", runParse},
		"keygen":   {"generate an agent or log signing key pair (encrypted PEM)", runKeygen},
		"central":  {"run the central service (ingest, transparency log, store, query API); agents and tokens admin", runCentral},
		"dev":      {"run central and an agent on this host with generated keys: the first thing to try", runDev},
		"query":    {"query stored events by actor, user, group, action, system, host and time", runQuery},
		"verify":   {"audit a central: checkpoints, consistency, tiles, header chains, bodies and stored events", runVerify},
		"enroll":   {"enroll this host's agent key with central using a token", runEnroll},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 {
		usage(stderr, cmds)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout, cmds)
		return exitOK
	case "-version", "--version":
		return runVersion(ctx, nil, stdout, stderr)
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "provtrail: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "provtrail keeps a signed, verifiable trail of every change to who-has-access.")
	fmt.Fprintln(w, "\nUsage: provtrail COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'provtrail COMMAND --help' for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 failure, 2 usage or configuration error.")
}
