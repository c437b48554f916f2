package window_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

type blockConfig struct {
	Endpoint string   `hcl:"endpoint,optional"`
	TokenURL string   `hcl:"token_url,optional"`
	PageSize int      `hcl:"page_size,optional"`
	Remain   hcl.Body `hcl:",remain"`
	window.Block
}

func (c *blockConfig) Validate() hcl.Diagnostics {
	v := c.Check()
	v.URL("endpoint", c.Endpoint, "https://api.example.com")
	v.URL("token_url", c.TokenURL, "")
	v.PageSize(c.PageSize, 100)
	return v.Diagnostics()
}

func decodeBlock(t *testing.T, src string) (*blockConfig, string) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "agent.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c := &blockConfig{}
	got, diags := window.DecodeBlock(f.Body, hclconfig.EvalContext(".", nil), c, &c.Remain, window.DefaultSettings(29))
	if got != nil {
		diags = append(diags, got.Validate()...)
	}
	var sb strings.Builder
	hclconfig.WriteDiagnostics(&sb, diags)
	return got, sb.String()
}

func TestDecodeBlock(t *testing.T) {
	c, diags := decodeBlock(t, `
page_size = 50
settle_lag = "5m"
`)
	if diags != "" || c == nil {
		t.Fatalf("%q", diags)
	}
	want := window.DefaultSettings(29)
	want.Config.SettleLag = 5 * time.Minute
	if c.Window != want || c.PageSize != 50 {
		t.Errorf("settings %+v", c.Window)
	}
	// The source's own attributes failing: no config at all.
	if c, diags := decodeBlock(t, `page_size = "many"`); c != nil || !strings.Contains(diags, "agent.hcl:1:") {
		t.Errorf("bad own attribute: %v %q", c, diags)
	}
	// An unknown attribute is still an error (the shared decoder sees it).
	if _, diags := decodeBlock(t, `pagesize = 5`); !strings.Contains(diags, `Unsupported argument`) {
		t.Errorf("unknown attribute: %q", diags)
	}
	// Validate's errors point at the block.
	_, diags = decodeBlock(t, "endpoint = \"http://api.example.com\"\ntoken_url = \"ftp://x\"\npage_size = 101\n")
	for _, want := range []string{
		"Invalid endpoint", "credentials are sent only over https",
		"Invalid token_url",
		"Invalid page_size", "page_size must be between 1 and 100.",
	} {
		if !strings.Contains(diags, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, diags)
		}
	}
	if !strings.Contains(diags, "agent.hcl:") {
		t.Errorf("diagnostics have no position:\n%s", diags)
	}
}
