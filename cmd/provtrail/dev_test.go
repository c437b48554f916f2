package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDev runs `provtrail dev` on a temporary auth log: it generates keys
// and configs, prints where things are, then prints appended changes as
// central stores them; the data dir then passes verify.
func TestDev(t *testing.T) {
	dir := t.TempDir()
	authLog := writeFile(t, dir, "auth.log", "")
	dataDir := filepath.Join(dir, "dev")
	stop, out, errs := startCmd(t, "dev", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--auth-log", authLog, "--start-at", "beginning", "--collectors", "authlog")
	waitFor(t, 20*time.Second, "dev to start", func() bool { return strings.Contains(out.String(), "Events appear below") })
	for _, want := range []string{"central        http://127.0.0.1:", "data dir       " + dataDir, "following      " + authLog + " (from its beginning)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("dev output lacks %q:\n%s", want, out)
		}
	}
	f, err := os.OpenFile(authLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%s devhost usermod[77]: add 'bob' to group 'docker'\n", time.Now().Format("Jan _2 15:04:05"))
	f.Close()
	waitFor(t, 10*time.Second, "the change to be printed", func() bool { return strings.Contains(out.String(), "bob in docker") })
	if code := stop(); code != 0 {
		t.Fatalf("dev exit %d: %s", code, errs)
	}
	code, vout, verr := runCmd(t, "verify", "--config", filepath.Join(dataDir, "central.hcl"), "--quiet")
	if code != 0 || !strings.Contains(vout, "verified: no problems found") || !strings.Contains(vout, "ok   query index: ") {
		t.Fatalf("verify after dev: %d\n%s\n%s", code, vout, verr)
	}
	// A second run reuses the keys and continues the chain.
	stop, out, errs = startCmd(t, "dev", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--auth-log", authLog, "--collectors", "authlog")
	waitFor(t, 20*time.Second, "dev to restart", func() bool { return strings.Contains(out.String(), "Events appear below") })
	if code := stop(); code != 0 {
		t.Fatalf("second dev exit %d: %s", code, errs)
	}
	if code, vout, _ := runCmd(t, "verify", "--config", filepath.Join(dataDir, "central.hcl"), "--quiet"); code != 0 {
		t.Fatalf("verify after restart: %d\n%s", code, vout)
	}
}
