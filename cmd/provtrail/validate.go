package main

import (
	"context"
	"fmt"
	"io"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/agent"
	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/all"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", "validate [--kind agent|central] --config FILE [FILE...]", stdout, stderr)
	var kind string
	var configs multiFlag
	fs.Var(&configs, "config", "configuration file to check (repeatable; also taken as arguments)")
	fs.StringVar(&kind, "kind", "", "agent or central (default: central if the file has a central block, else agent)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	configs = append(configs, fs.Args()...)
	if len(configs) == 0 {
		fmt.Fprintln(stderr, "provtrail validate: --config FILE is required")
		fs.Usage()
		return exitUsage
	}
	if kind != "" && kind != "agent" && kind != "central" {
		fmt.Fprintf(stderr, "provtrail validate: --kind must be agent or central, not %q\n", kind)
		return exitUsage
	}
	reg := all.Registry()
	failed := false
	for _, path := range configs {
		diags, k := validateFile(path, kind, reg)
		hclconfig.WriteDiagnostics(stderr, diags)
		if diags.HasErrors() {
			failed = true
			continue
		}
		fmt.Fprintf(stdout, "%s: valid %s configuration\n", path, k)
	}
	if failed {
		return exitUsage
	}
	return exitOK
}

func validateFile(path, kind string, reg *collectors.Registry) (hcl.Diagnostics, string) {
	f, diags := hclconfig.Parse(path)
	if diags.HasErrors() {
		return diags, kind
	}
	if kind == "" {
		kind = detectKind(f.Body)
	}
	switch kind {
	case "central":
		_, more := central.DecodeConfig(f.Body, path)
		return append(diags, more...), kind
	default:
		_, more := agent.DecodeConfig(f.Body, path, reg)
		return append(diags, more...), "agent"
	}
}

// detectKind tells central.hcl from agent.hcl by its top-level blocks.
func detectKind(body hcl.Body) string {
	content, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "central"}, {Type: "agent"}}})
	for _, b := range content.Blocks {
		if b.Type == "central" {
			return "central"
		}
	}
	return "agent"
}

type multiFlag []string

func (m *multiFlag) String() string { return fmt.Sprint(*m) }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}
