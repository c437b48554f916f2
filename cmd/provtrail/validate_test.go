package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateReportsPositions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    string // regexp matched against stderr; FILE is replaced by the path
	}{
		{
			name: "mistyped attribute",
			content: `central {
  listen   = "127.0.0.1:7443"
  data_dri = "/tmp/x"
}
tls {
  cert_file = "c"
  key_file = "k"
}
log_signer { key_file = "l" }
`,
			want: `(?m)^FILE:3:3: error: Unsupported argument; An argument named "data_dri" is not expected here`,
		},
		{
			name:    "unknown block",
			content: "central { listen = \"127.0.0.1:1\" }\nlog_signer { key_file = \"l\" }\ntls {\n cert_file = \"c\"\n key_file = \"k\"\n}\nalerts {}\n",
			want:    `(?m)^FILE:7:1: error: Unsupported block type`,
		},
		{
			name:    "bad duration",
			content: "agent { id = \"a\" }\nsigner { key_file = \"k\" }\nforward {\n  url = \"https://c:7443\"\n  batch_max_wait = \"soon\"\n}\n",
			want:    `(?m)^FILE:5:20: error: Invalid duration`,
		},
		{
			name:    "bad size",
			content: "agent { id = \"a\" }\nsigner { key_file = \"k\" }\nforward {\n  url = \"https://c:7443\"\n  spool_max_bytes = \"lots\"\n}\n",
			want:    `(?m)^FILE:5:21: error: Invalid size`,
		},
		{
			name:    "unknown collector type",
			content: "agent { id = \"a\" }\nsigner { key_file = \"k\" }\nforward { url = \"https://c:7443\" }\ncollector \"nope\" \"x\" {}\n",
			want:    `(?m)^FILE:4:11: error: Unknown collector type`,
		},
		{
			name:    "missing env",
			content: "agent { id = env(\"PROVTRAIL_TEST_SURELY_UNSET\") }\nsigner { key_file = \"k\" }\nforward { url = \"https://c:7443\" }\n",
			want:    `(?m)^FILE:1:14: error: Error in function call;.*PROVTRAIL_TEST_SURELY_UNSET is not set`,
		},
		{
			name:    "syntax error",
			content: "agent { id = \n",
			want:    `(?m)^FILE:\d+:\d+: error: `,
		},
		{
			name:    "plain http off loopback",
			content: "central {\n listen = \"0.0.0.0:7443\"\n dev = true\n}\nlog_signer { key_file = \"l\" }\n",
			want:    `(?m)^FILE:1:1: error: Plain HTTP on a non-loopback address`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tt.name, " ", "_")+".hcl", tt.content)
			code, _, stderr := runCmd(t, "validate", "--config", path)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			re := regexp.MustCompile(strings.ReplaceAll(tt.want, "FILE", regexp.QuoteMeta(path)))
			if !re.MatchString(stderr) {
				t.Errorf("stderr does not match %s:\n%s", re, stderr)
			}
		})
	}
}

func TestValidateAcceptsValidFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PROVTRAIL_TEST_AGENT_ID", "web-01")
	writeFile(t, dir, "url.txt", "https://central.example:7443\n")
	path := writeFile(t, dir, "agent.hcl", `
agent {
  id        = env("PROVTRAIL_TEST_AGENT_ID")
  state_dir = "/var/lib/provtrail"
}
signer {
  key_file       = "/etc/provtrail/agent.key"
  passphrase_env = "AGENT_PASS"
}
forward {
  url = file("url.txt")
  batch_max_events = 500
  batch_max_wait = "1s"
  spool_max_bytes = "1GiB"
}
`)
	code, stdout, stderr := runCmd(t, "validate", path)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "valid agent configuration") {
		t.Errorf("stdout = %q", stdout)
	}
}

// Every file under configs/ is documentation users copy; it must stay valid.
func TestShippedConfigsAreValid(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, _, stderr := runCmd(t, "validate", "--config", f)
			if code != exitOK {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
		})
	}
}

func TestUsageAndHelp(t *testing.T) {
	if code, _, _ := runCmd(t); code != exitUsage {
		t.Errorf("no args: exit %d, want %d", code, exitUsage)
	}
	if code, _, _ := runCmd(t, "frobnicate"); code != exitUsage {
		t.Errorf("unknown command: exit %d, want %d", code, exitUsage)
	}
	for name := range commands() {
		code, stdout, _ := runCmd(t, name, "--help")
		if code != exitOK || !strings.Contains(stdout, "Usage: provtrail "+name) {
			t.Errorf("%s --help: exit %d, stdout %q", name, code, stdout)
		}
	}
	code, stdout, _ := runCmd(t, "version")
	if code != exitOK || !strings.Contains(stdout, "provtrail ") || !strings.Contains(stdout, "go1.") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}
