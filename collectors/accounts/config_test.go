package accounts

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

func decode(t *testing.T, src string) (collectors.Config, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclconfig.ParseBytes("agent.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	fac := NewFactory()
	cfg, diags := fac.DecodeConfig(f.Body, hclconfig.EvalContext(".", nil))
	if cfg != nil {
		diags = append(diags, cfg.Validate()...)
	}
	return cfg, diags
}

func TestConfig(t *testing.T) {
	cfg, diags := decode(t, "")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c := cfg.(*Config)
	if c.Root != "/" || c.PollInterval != DefaultPollInterval || c.Debounce != DefaultDebounce || !c.Sudoers || len(c.PrivilegedGroups) == 0 {
		t.Errorf("defaults: %+v", c)
	}
	cfg, diags = decode(t, "root = \"/srv/chroot\"\npoll_interval = \"5s\"\ndebounce = \"1s\"\nprivileged_groups = [\"wheel\"]\nsudoers = false\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c = cfg.(*Config)
	if c.Root != "/srv/chroot" || c.PollInterval != 5*time.Second || c.Debounce != time.Second || c.Sudoers || len(c.PrivilegedGroups) != 1 {
		t.Errorf("decoded: %+v", c)
	}
	for _, tc := range []struct{ src, want string }{
		{"rooot = \"/\"", "agent.hcl:1:1: error: Unsupported argument"},
		{"root = \"relative\"", "agent.hcl:1:8: error: Invalid root"},
		{"poll_interval = \"10ms\"", "agent.hcl:1:17: error: Invalid poll_interval"},
		{"poll_interval = \"soon\"", "agent.hcl:1:17: error: Invalid duration"},
		{"debounce = \"1m\"", "agent.hcl:1:12: error: Invalid debounce"},
		{"root = 3", "agent.hcl:1:8: error: Invalid value"},
	} {
		_, diags := decode(t, tc.src)
		var b strings.Builder
		hclconfig.WriteDiagnostics(&b, diags)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s: got %q, want %q", tc.src, b.String(), tc.want)
		}
	}
}
