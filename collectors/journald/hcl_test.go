package journald

import (
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

func hclParse(t *testing.T, src string) (hcl.Body, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclconfig.ParseBytes("agent.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return f.Body, diags
}
