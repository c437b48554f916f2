package hclconfig

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// MaxFileSize bounds config files and files read through file().
const MaxFileSize = 4 << 20

// File is a parsed HCL file and the parser that holds its source, which the
// diagnostic writer needs to show snippets.
type File struct {
	Path   string
	Body   hcl.Body
	Parser *hclparse.Parser
}

// Parse reads and parses the HCL file at path.
func Parse(path string) (*File, hcl.Diagnostics) {
	src, err := readBounded(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration",
			Detail:   err.Error(),
			Subject:  &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	return ParseBytes(path, src)
}

// ParseBytes parses src as the HCL file named path.
func ParseBytes(path string, src []byte) (*File, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, path)
	if diags.HasErrors() {
		return &File{Path: path, Parser: p}, diags
	}
	return &File{Path: path, Body: f.Body, Parser: p}, diags
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxFileSize)
	}
	return b, nil
}

// EvalContext returns the context config expressions are evaluated in:
// env("NAME") reads an environment variable (an error when unset, so a
// missing secret is never silently empty; env("NAME", "default") gives a
// fallback), and file("path") reads a file relative to baseDir, with its
// trailing newline removed. Variables are the given vars (may be nil).
func EvalContext(baseDir string, vars map[string]cty.Value) *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: vars,
		Functions: map[string]function.Function{
			"env":  envFunc(),
			"file": fileFunc(baseDir),
		},
	}
}

func envFunc() function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		RefineResult: func(b *cty.RefinementBuilder) *cty.RefinementBuilder {
			return b.NotNull()
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if v, ok := os.LookupEnv(name); ok {
				return cty.StringVal(v), nil
			}
			if len(args) > 1 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %s is not set", name)
		},
	})
}

func fileFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the contents of a file, without its trailing newline.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(baseDir, p)
			}
			b, err := readBounded(p)
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(strings.TrimRight(string(b), "\r\n")), nil
		},
	})
}

// WriteDiagnostics prints diags as "FILE:LINE:COL: severity: summary; detail",
// one per line, the form editors and CI logs understand.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics) {
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += "; " + d.Detail
		}
		if d.Subject != nil {
			fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, sev, msg)
		} else {
			fmt.Fprintf(w, "%s: %s\n", sev, msg)
		}
	}
}

// Error returns a diagnostic pointing at rng.
func Error(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// Duration evaluates an optional duration attribute ("5s", "1m30s").
// A nil or absent expression yields def.
func Duration(expr hcl.Expression, ctx *hcl.EvalContext, def time.Duration) (time.Duration, hcl.Diagnostics) {
	s, present, diags := optionalString(expr, ctx)
	if !present || diags.HasErrors() {
		return def, diags
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return def, hcl.Diagnostics{Error(expr.Range(), "Invalid duration",
			fmt.Sprintf("%q is not a duration such as \"500ms\", \"5s\" or \"1h30m\".", s))}
	}
	return d, nil
}

// Size evaluates an optional size attribute ("512KiB", "1GiB", "10MB",
// or a plain number of bytes). A nil or absent expression yields def.
func Size(expr hcl.Expression, ctx *hcl.EvalContext, def int64) (int64, hcl.Diagnostics) {
	if expr == nil || isAbsent(expr) {
		return def, nil
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return def, diags
	}
	if v.Type() == cty.Number {
		n, _ := v.AsBigFloat().Int64()
		if n < 0 {
			return def, hcl.Diagnostics{Error(expr.Range(), "Invalid size", "A size cannot be negative.")}
		}
		return n, nil
	}
	s, present, diags := optionalString(expr, ctx)
	if !present || diags.HasErrors() {
		return def, diags
	}
	n, err := ParseSize(s)
	if err != nil {
		return def, hcl.Diagnostics{Error(expr.Range(), "Invalid size", err.Error())}
	}
	return n, nil
}

// ParseSize parses "1GiB", "512 KiB", "10MB", "4096".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("%q is not a size such as \"512KiB\", \"64MiB\" or \"1GiB\"", s)
	}
	mult := map[string]float64{
		"": 1, "B": 1,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q has unknown unit %q (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s, unit)
	}
	v := f * mult
	if v > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

func optionalString(expr hcl.Expression, ctx *hcl.EvalContext) (string, bool, hcl.Diagnostics) {
	if expr == nil || isAbsent(expr) {
		return "", false, nil
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return "", false, diags
	}
	if v.IsNull() {
		return "", false, nil
	}
	if v.Type() != cty.String {
		return "", false, hcl.Diagnostics{Error(expr.Range(), "Invalid value", "A string is required here.")}
	}
	return v.AsString(), true, nil
}

// isAbsent reports whether expr stands for an optional attribute that was
// not set: gohcl gives such hcl.Expression fields a synthetic null
// expression with an empty range.
func isAbsent(expr hcl.Expression) bool {
	r := expr.Range()
	if r.Filename == "" && r.Start.Byte == 0 && r.End.Byte == 0 {
		v, diags := expr.Value(nil)
		return !diags.HasErrors() && v.IsNull()
	}
	return false
}

// Path resolves a path from a config file relative to the file's directory,
// as users expect of "keys/web-01.pub"; absolute and empty paths are kept.
func Path(baseDir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(baseDir, p)
}

// Singletons tracks the blocks of a file that may appear at most once.
type Singletons map[string]*hcl.Block

// Once records b and reports whether it is the first block of its type;
// a repeat gets a diagnostic pointing at both.
func (s Singletons) Once(b *hcl.Block, diags *hcl.Diagnostics) bool {
	if prev, dup := s[b.Type]; dup {
		*diags = append(*diags, Error(b.DefRange, "Duplicate "+b.Type+" block",
			fmt.Sprintf("Only one %s block is allowed; the first is at %s.", b.Type, prev.DefRange)))
		return false
	}
	s[b.Type] = b
	return true
}

// Require reports each of types that the file has no block of; what names
// the file kind ("agent", "central") in the message.
func (s Singletons) Require(body hcl.Body, what string, types ...string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range types {
		if s[t] == nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing " + t + " block",
				Detail:   fmt.Sprintf("%s configuration needs a %s block.", what, t),
				Subject:  body.MissingItemRange().Ptr(),
			})
		}
	}
	return diags
}

// Deref returns *p, or def when the optional attribute p was not set.
func Deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
