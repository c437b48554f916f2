package authlog

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

func decodeFile(t *testing.T, name string) (*Config, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclconfig.Parse("testdata/config/" + name)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %v", name, diags)
	}
	fac := NewFactory()
	cfg, diags := fac.DecodeConfig(f.Body, hclconfig.EvalContext("testdata/config", nil))
	c, _ := cfg.(*Config)
	return c, diags
}

func TestConfigFull(t *testing.T) {
	c, diags := decodeFile(t, "full.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if diags := c.Validate(); diags.HasErrors() {
		t.Fatal(diags)
	}
	want := []string{"/var/log/auth.log", "/var/log/secure"}
	if v, ok := os.LookupEnv("PROVTRAIL_TEST_SECURE"); ok {
		want[1] = v
	}
	if !slices.Equal(c.Paths, want) || c.Location != time.UTC || c.Year != 2025 || c.MaxLineBytes != 16<<10 ||
		c.StartAt != "end" || c.PollInterval != 250*time.Millisecond || c.RotateWait != 10*time.Second ||
		c.FlushAfter != 2*time.Second || c.SudoWindow != 3*time.Second || !slices.Equal(c.PrivilegedGroups, []string{"sudo", "wheel", "ops-admins"}) {
		t.Errorf("decoded %+v", c)
	}
	if _, err := New(collectors.Settings{}, c); err != nil {
		t.Errorf("New: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, diags := decodeFile(t, "minimal.hcl")
	if diags.HasErrors() || c.Validate().HasErrors() {
		t.Fatal(diags, c.Validate())
	}
	if c.Location != time.Local || c.Year != 0 || c.MaxLineBytes != DefaultMaxLineBytes || c.StartAt != "beginning" ||
		c.SudoWindow != DefaultSudoWindow || !slices.Contains(c.PrivilegedGroups, "wheel") {
		t.Errorf("defaults %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		file string
		// want are "LINE:COL summary" prefixes, in order.
		want []string
	}{
		{"unknown_attr.hcl", []string{"2:1 Unsupported argument"}},
		{"missing_paths.hcl", []string{"1:1 No paths"}},
		{"invalid.hcl", []string{
			"1:18 Relative path", "1:18 Compressed file", "1:18 Empty path",
			"2:18 Unknown time zone", "3:18 Invalid year", "4:18 Invalid max_line_bytes",
			"5:18 Invalid start_at", "6:18 Invalid poll_interval",
		}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			cfg, diags := decodeFile(t, c.file)
			if !diags.HasErrors() {
				diags = cfg.Validate()
			}
			var got []string
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic without a range: %s", d.Summary)
					continue
				}
				if d.Subject.Filename != "testdata/config/"+c.file {
					t.Errorf("diagnostic in %q", d.Subject.Filename)
				}
				got = append(got, strings.Join([]string{strconv.Itoa(d.Subject.Start.Line) + ":" + strconv.Itoa(d.Subject.Start.Column), d.Summary}, " "))
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if _, err := New(collectors.Settings{}, cfg); err == nil && cfg != nil && cfg.Validate().HasErrors() {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type != "authlog" || f.DecodeConfig == nil || f.New == nil || f.NewParser == nil || f.Description == "" {
		t.Fatalf("factory %+v", f)
	}
	if _, err := collectors.NewRegistry(f); err != nil {
		t.Fatal(err)
	}
	p, err := f.NewParser(collectors.Settings{Hostname: "h"})
	if err != nil || p == nil {
		t.Fatalf("NewParser: %v", err)
	}
	if _, err := f.New(collectors.Settings{}, DefaultConfig()); err == nil {
		t.Error("New accepted a config without paths")
	}
}
