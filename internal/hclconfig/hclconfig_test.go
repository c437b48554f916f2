package hclconfig

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"4096", 4096, true},
		{"512KiB", 512 << 10, true},
		{"1GiB", 1 << 30, true},
		{"1 GiB", 1 << 30, true},
		{"10MB", 10_000_000, true},
		{"1.5MiB", 3 << 19, true},
		{"64M", 64 << 20, true},
		{"", 0, false},
		{"lots", 0, false},
		{"-1KiB", 0, false},
		{"1PiB", 0, false},
		{"99999999999TiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func expr(t *testing.T, src string) hcl.Expression {
	t.Helper()
	e, diags := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return e
}

func TestDurationAndSize(t *testing.T) {
	ctx := EvalContext(t.TempDir(), nil)
	if d, diags := Duration(expr(t, `"1m30s"`), ctx, 0); diags.HasErrors() || d != 90*time.Second {
		t.Errorf("Duration = %v, %v", d, diags)
	}
	if d, diags := Duration(nil, ctx, time.Second); diags.HasErrors() || d != time.Second {
		t.Errorf("absent Duration = %v, %v", d, diags)
	}
	if _, diags := Duration(expr(t, `"-5s"`), ctx, 0); !diags.HasErrors() {
		t.Error("negative duration accepted")
	}
	_, diags := Duration(expr(t, `"soon"`), ctx, 0)
	if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Column != 1 {
		t.Errorf("bad duration diagnostics = %v", diags)
	}
	if n, diags := Size(expr(t, `1024`), ctx, 0); diags.HasErrors() || n != 1024 {
		t.Errorf("numeric Size = %d, %v", n, diags)
	}
	if n, diags := Size(expr(t, `"2KiB"`), ctx, 0); diags.HasErrors() || n != 2048 {
		t.Errorf("Size = %d, %v", n, diags)
	}
}

func TestFunctions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PROVTRAIL_HCL_TEST", "from-env")
	ctx := EvalContext(dir, nil)
	tests := []struct {
		src, want string
		ok        bool
	}{
		{`file("secret.txt")`, "s3cret", true},
		{`env("PROVTRAIL_HCL_TEST")`, "from-env", true},
		{`env("PROVTRAIL_HCL_TEST_UNSET", "fallback")`, "fallback", true},
		{`env("PROVTRAIL_HCL_TEST_UNSET")`, "", false},
		{`file("missing.txt")`, "", false},
	}
	for _, tt := range tests {
		v, diags := expr(t, tt.src).Value(ctx)
		if diags.HasErrors() != !tt.ok {
			t.Errorf("%s: diags %v", tt.src, diags)
			continue
		}
		if tt.ok && v.AsString() != tt.want {
			t.Errorf("%s = %q, want %q", tt.src, v.AsString(), tt.want)
		}
	}
}
