package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/all"
	"github.com/provtrail/provtrail/event"
)

func runParse(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("parse", "parse --collector TYPE [--format schema|ecs] [FILE...|-]", stdout, stderr)
	var typ, format, name, hostname string
	fs.StringVar(&typ, "collector", "", "collector type whose parser to run (required)")
	fs.StringVar(&format, "format", "schema", "output: schema (provtrail event v1) or ecs")
	fs.StringVar(&name, "name", "parse", "collector instance name to put in source.instance")
	fs.StringVar(&hostname, "hostname", "", "host name for events whose source names none (default: this host)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	reg := all.Registry()
	if typ == "" {
		fmt.Fprintf(stderr, "provtrail parse: --collector is required (one of %v)\n", reg.Types())
		return exitUsage
	}
	if format != "schema" && format != "ecs" {
		fmt.Fprintf(stderr, "provtrail parse: --format must be schema or ecs, not %q\n", format)
		return exitUsage
	}
	fac, err := reg.Lookup(typ)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail parse: %v\n", err)
		return exitUsage
	}
	if fac.NewParser == nil {
		fmt.Fprintf(stderr, "provtrail parse: collector %q has no offline parser\n", typ)
		return exitUsage
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	problems := &collectors.ProblemCounter{Next: collectors.ProblemFunc(func(p collectors.Problem) {
		fmt.Fprintf(stderr, "provtrail parse: %s\n", p)
	})}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := fac.NewParser(collectors.Settings{Type: typ, Name: name, Hostname: hostname, Logger: logger, Problems: problems})
	if err != nil {
		fmt.Fprintf(stderr, "provtrail parse: %v\n", err)
		return exitFailure
	}

	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	var events, invalid int
	emit := collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
		for i := range recs {
			ev := &recs[i].Event
			if err := event.Validate(ev); err != nil {
				invalid++
				fmt.Fprintf(stderr, "provtrail parse: event %s does not meet the schema: %v\n", ev.ID, err)
			}
			var v any = ev
			if format == "ecs" {
				v = ev.ECS()
			}
			if err := enc.Encode(v); err != nil {
				return fmt.Errorf("write event: %w", err)
			}
			events++
		}
		return nil
	})

	inputs := fs.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	start := time.Now()
	failed := false
	for _, in := range inputs {
		if err := parseInput(ctx, p, in, emit); err != nil {
			fmt.Fprintf(stderr, "provtrail parse: %v\n", err)
			failed = true
		}
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "provtrail parse: write: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stderr, "provtrail parse: %d events, %d unreadable records, %d invalid events from %d inputs in %s\n",
		events, problems.Count(), invalid, len(inputs), time.Since(start).Round(time.Millisecond))
	if failed || invalid > 0 {
		return exitFailure
	}
	return exitOK
}

func parseInput(ctx context.Context, p collectors.Parser, path string, emit collectors.Emitter) error {
	if path == "-" {
		return p.Parse(ctx, os.Stdin, "-", emit)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open input: %w", err)
	}
	defer f.Close()
	if err := p.Parse(ctx, f, path, emit); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}
