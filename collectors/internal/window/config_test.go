package window_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

type sourceBlock struct {
	Domain string   `hcl:"domain"`
	Remain hcl.Body `hcl:",remain"`
}

func decode(t *testing.T, src string) (window.Settings, string) {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := hclconfig.EvalContext(".", nil)
	var b sourceBlock
	if diags := gohcl.DecodeBody(f.Body, ctx, &b); diags.HasErrors() {
		return window.Settings{}, diags.Error()
	}
	def := window.Settings{Config: window.Config{SettleLag: time.Minute, Overlap: time.Minute,
		MaxWindow: time.Hour, PollInterval: time.Minute}, RequestsPerMinute: 60}
	s, diags := window.DecodeAttrs(b.Remain, ctx, def)
	var sb strings.Builder
	hclconfig.WriteDiagnostics(&sb, diags)
	return s, sb.String()
}

func TestDecodeAttrs(t *testing.T) {
	s, errs := decode(t, `
domain = "x"
settle_lag = "20m"
overlap = "45m"
rescan_interval = "2h"
rescan_lookback = "48h"
backfill_since = "72h"
requests_per_minute = 30
`)
	if errs != "" {
		t.Fatal(errs)
	}
	if s.Config.SettleLag != 20*time.Minute || s.Config.Overlap != 45*time.Minute || s.BackfillAgo != 72*time.Hour ||
		s.RequestsPerMinute != 30 || s.Config.RescanLookback != 48*time.Hour || s.Config.MaxWindow != time.Hour {
		t.Fatalf("%+v", s)
	}
	now := time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)
	if got := s.Resolve(now).BackfillSince; !got.Equal(now.Add(-72 * time.Hour)) {
		t.Fatalf("backfill since %s", got)
	}
	s, errs = decode(t, "domain = \"x\"\nbackfill_since = \"2025-12-01T00:00:00Z\"\n")
	if errs != "" || !s.Config.BackfillSince.Equal(time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("%v %+v", errs, s)
	}
}

func TestDecodeAttrsErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"domain = \"x\"\nsettle_lagg = \"1m\"\n", "test.hcl:2:1: error: Unsupported argument"},
		{"domain = \"x\"\noverlap = \"soon\"\n", "test.hcl:2:11: error: Invalid duration"},
		{"domain = \"x\"\nbackfill_since = \"yesterday\"\n", "test.hcl:2:18: error: Invalid backfill_since"},
		{"domain = \"x\"\nrequests_per_minute = 0\n", "test.hcl:2:23: error: Invalid requests_per_minute"},
		{"domain = \"x\"\nrescan_interval = \"1h\"\nrescan_lookback = \"30s\"\n", "test.hcl:3:19: error: Invalid rescan_lookback"},
		{"domain = \"x\"\nmax_window = \"0s\"\n", "test.hcl:2:14: error: Invalid max_window"},
	}
	for _, tc := range tests {
		_, errs := decode(t, tc.src)
		if !strings.Contains(errs, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.src, errs, tc.want)
		}
	}
}
