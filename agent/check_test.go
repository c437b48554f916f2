package agent

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/authlog"
	"github.com/provtrail/provtrail/signer"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	k, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.WriteKeyPair(dir, "agent", k, nil); err != nil {
		t.Fatal(err)
	}
	healthy := true
	central := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer central.Close()
	caFile := filepath.Join(dir, "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: central.Certificate().Raw})
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	authLog := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(authLog, []byte("Nov 25 10:00:00 h sshd[1]: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := collectors.NewRegistry(authlog.NewFactory())
	if err != nil {
		t.Fatal(err)
	}
	write := func(paths string) *Config {
		src := fmt.Sprintf(`
agent {
  id        = "h"
  state_dir = %q
}
signer {
  key_file = %q
}
forward {
  url     = %q
  ca_file = %q
}
collector "authlog" "system" {
  paths = [%s]
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "agent.key"), central.URL, caFile, paths)
		p := filepath.Join(dir, "agent.hcl")
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, diags := LoadConfig(p, reg)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return cfg
	}
	summary := func(rs []CheckResult) string {
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, "%v %s: %s\n", r.OK, r.What, r.Detail)
		}
		return b.String()
	}

	got := Check(context.Background(), write(fmt.Sprintf("%q", authLog)), reg, Options{})
	if len(got) != 4 {
		t.Fatalf("results:\n%s", summary(got))
	}
	for _, r := range got {
		if !r.OK {
			t.Errorf("all should pass:\n%s", summary(got))
			break
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Error("check created the state dir; it must change nothing")
	}

	healthy = false
	got = Check(context.Background(), write(fmt.Sprintf("%q", filepath.Join(dir, "missing.log"))), reg, Options{})
	s := summary(got)
	if !strings.Contains(s, "false collector authlog \"system\": none of") || !strings.Contains(s, "false central") || !strings.Contains(s, "503") {
		t.Errorf("missing log and unhealthy central not reported:\n%s", s)
	}
}
