package auditd

import (
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

func decodeHCL(t *testing.T, fac collectors.Factory, src string) (collectors.Config, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclconfig.ParseBytes("agent.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, diags := fac.DecodeConfig(f.Body, hclconfig.EvalContext(".", nil))
	if cfg != nil {
		diags = append(diags, cfg.Validate()...)
	}
	return cfg, diags
}
