package changelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

func decodeHCL(t *testing.T, dir, src string) (*Config, hcl.Diagnostics) {
	t.Helper()
	f, diags := hclconfig.ParseBytes(filepath.Join(dir, "agent.hcl"), []byte(src))
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	cfg, diags := NewFactory().DecodeConfig(f.Body, hclconfig.EvalContext(dir, nil))
	if diags.HasErrors() {
		return nil, diags
	}
	c := cfg.(*Config)
	return c, append(diags, c.Validate()...)
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "ldap.pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LDAP_TEST_PW", "s3cret-from-env")
	tests := []struct {
		name, src string
		// wantErr is a substring of the diagnostics, with the line:col of
		// the offending attribute when the diagnostic points at one.
		wantErr string
		check   func(*testing.T, *Config)
	}{
		{name: "minimal with env password", src: `
url = "ldap://127.0.0.1:389"
bind_dn = "cn=auditreader,dc=example,dc=com"
bind_password = env("LDAP_TEST_PW")
privileged_groups = ["cn=sudo,ou=groups,dc=example,dc=com"]
`, check: func(t *testing.T, c *Config) {
			if c.BaseDN != "cn=changelog" || c.PollInterval != 5*time.Second || c.PageSize != 500 || c.BindPassword != "s3cret-from-env" {
				t.Errorf("defaults: %+v", c.Common)
			}
		}},
		{name: "all attributes", src: `
url = "ldap://ldap.example.com"
bind_dn = "cn=auditreader,dc=example,dc=com"
bind_password_file = "ldap.pw"
base_dn = "cn=log"
start_tls = true
privileged_groups = ["cn=admins,ou=groups,dc=example,dc=com"]
user_classes = ["inetOrgPerson"]
group_classes = ["groupOfNames"]
secret_attributes = ["appToken"]
poll_interval = "2s"
page_size = 100
persistent_search = true
skip_replicated = true
`, check: func(t *testing.T, c *Config) {
			if c.PollInterval != 2*time.Second || c.PageSize != 100 || !c.StartTLS || c.BaseDN != "cn=log" || !c.PersistentSearch || !c.SkipReplicated {
				t.Errorf("decoded: %+v", c)
			}
		}},
		{name: "unknown attribute", src: "url = \"ldap://x\"\nurll = \"y\"\n", wantErr: "Unsupported argument"},
		{name: "missing url", src: "bind_dn = \"cn=a\"\n", wantErr: "Missing required argument"},
		{name: "bad scheme", src: "url = \"http://x\"\n", wantErr: "agent.hcl:1:1: error: Invalid url"},
		{name: "credentials in url", src: "url = \"ldap://u:p@x\"\n", wantErr: "must not carry credentials"},
		{name: "both passwords", src: "url = \"ldap://x\"\nbind_dn = \"cn=a\"\nbind_password = \"p\"\nbind_password_file = \"ldap.pw\"\n", wantErr: "agent.hcl:4:1: error: Conflicting attributes"},
		{name: "dn without password", src: "url = \"ldap://x\"\nbind_dn = \"cn=a\"\n", wantErr: "Missing password"},
		{name: "password without dn", src: "url = \"ldap://x\"\nbind_password = \"p\"\n", wantErr: "Missing bind_dn"},
		{name: "missing password file", src: "url = \"ldap://x\"\nbind_dn = \"cn=a\"\nbind_password_file = \"nope\"\n", wantErr: "Invalid bind_password_file"},
		{name: "bad duration", src: "url = \"ldap://x\"\npoll_interval = \"soon\"\n", wantErr: "agent.hcl:2:17: error: Invalid duration"},
		{name: "bad privileged group", src: "url = \"ldap://x\"\nprivileged_groups = [\"not a dn\"]\n", wantErr: "Invalid privileged group"},
		{name: "starttls on ldaps", src: "url = \"ldaps://x\"\nstart_tls = true\n", wantErr: "start_tls cannot be used with ldaps"},
		{name: "page size", src: "url = \"ldap://x\"\npage_size = -1\n", wantErr: "Invalid page_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, diags := decodeHCL(t, dir, tt.src)
			var buf bytes.Buffer
			hclconfig.WriteDiagnostics(&buf, diags)
			if tt.wantErr == "" {
				if diags.HasErrors() {
					t.Fatalf("unexpected: %s", buf.String())
				}
				tt.check(t, c)
				return
			}
			if !diags.HasErrors() || !strings.Contains(buf.String(), tt.wantErr) {
				t.Fatalf("diagnostics %q, want %q", buf.String(), tt.wantErr)
			}
		})
	}
}

// TestConfigNeverShowsPassword: printing or logging the config does not
// reveal the bind password.
func TestConfigNeverShowsPassword(t *testing.T) {
	c, diags := decodeHCL(t, t.TempDir(), "url = \"ldap://x\"\nbind_dn = \"cn=a\"\nbind_password = \"Sup3rSecretBind\"\n")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", c, "opts", c.Options())
	out := buf.String() + fmt.Sprintf("%v %+v %#v %s", c, c, c, c.Options())
	if strings.Contains(out, "Sup3rSecretBind") {
		t.Fatalf("password shown: %s", out)
	}
}
