package central

import (
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

func TestConfigHeartbeatAndSilence(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		wantErr   string
		central   time.Duration // central heartbeat_interval
		margin    time.Duration
		agent     time.Duration
	}{
		{name: "defaults", src: `agent "a" { public_key_file = "a.pub" }`,
			central: DefaultHeartbeatInterval, margin: DefaultSilenceMargin},
		{name: "set", src: `
central {
  heartbeat_interval = "30s"
  silence_margin     = "15s"
}
agent "a" {
  public_key_file    = "a.pub"
  heartbeat_interval = "5m"
}`, central: 30 * time.Second, margin: 15 * time.Second, agent: 5 * time.Minute},
		{name: "bad agent interval", src: `agent "a" {
  public_key_file    = "a.pub"
  heartbeat_interval = "often"
}`, wantErr: "central.hcl:4,24-31: Invalid duration"},
		{name: "bad margin", src: `central { silence_margin = "-1s" }`, wantErr: "Invalid duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if !strings.Contains(src, "central {") {
				src = "central {}\n" + src
			}
			src += "\nlog_signer { key_file = \"log.key\" }\ntls {\n  cert_file = \"c\"\n  key_file = \"k\"\n}\n"
			f, diags := hclconfig.ParseBytes("central.hcl", []byte(src))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			cfg, diags := DecodeConfig(f.Body, "central.hcl")
			if tc.wantErr != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.wantErr) {
					t.Fatalf("diags %v, want %q", diags, tc.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if cfg.Central.HeartbeatInterval != tc.central || cfg.Central.SilenceMargin != tc.margin {
				t.Errorf("central %s margin %s", cfg.Central.HeartbeatInterval, cfg.Central.SilenceMargin)
			}
			if len(cfg.Agents) != 1 || cfg.Agents[0].HeartbeatInterval != tc.agent {
				t.Errorf("agents %+v", cfg.Agents)
			}
		})
	}
}
