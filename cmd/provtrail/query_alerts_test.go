package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central"
)

// TestAlertsEntitlementsAndSilence runs central and a real agent (authlog
// collector, heartbeat every second), sees a rule fire on a sudo grant into
// a file notifier, queries alerts, entitlements and drift through the CLI
// (store and HTTPS), acknowledges the alert both ways, and checks that
// central reports the agent silent within its heartbeat interval plus the
// margin after the agent stops.
func TestAlertsEntitlementsAndSilence(t *testing.T) {
	dir := t.TempDir()
	writeTestPKI(t, dir)
	genKey(t, dir, "log", []byte("log secret"))
	writeFile(t, dir, "log.pass", "log secret\n")
	genKey(t, dir, "web-01", nil)
	addr := freePort(t)
	alertsFile := filepath.Join(dir, "alerts.ndjson")
	const hb, margin = time.Second, time.Second
	centralHCL := writeFile(t, dir, "central.hcl", fmt.Sprintf(`
central {
  listen         = %q
  data_dir       = %q
  audience       = "e2e-central"
  silence_margin = "1s"
}
tls {
  cert_file = "central.crt"
  key_file  = "central.key"
}
log_signer {
  key_file        = "log.key"
  passphrase_file = "log.pass"
}
agent "web-01" {
  public_key_file    = "web-01.pub"
  heartbeat_interval = "1s"
}
alert "sudo_grant" {
  when     = contains(["group.member.add", "privilege.grant"], event.action) && event.target.group.name == "sudo"
  severity = "high"
  notify   = ["file"]
}
notifier "file" "file" {
  path = %q
}
`, addr, filepath.Join(dir, "data"), alertsFile))
	if code, out, errs := runCmd(t, "validate", centralHCL); code != 0 {
		t.Fatalf("validate: %d %s %s", code, out, errs)
	}
	authLog := writeFile(t, dir, "auth.log", "")
	agentHCL := writeFile(t, dir, "agent.hcl", fmt.Sprintf(`
agent {
  id                 = "web-01"
  state_dir          = %q
  heartbeat_interval = "1s"
}
signer {
  key_file = %q
}
forward {
  url            = "https://%s"
  audience       = "e2e-central"
  ca_file        = %q
  batch_max_wait = "100ms"
}
collector "authlog" "system" {
  paths         = [%q]
  start_at      = "beginning"
  poll_interval = "100ms"
  flush_after   = "100ms"
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "web-01.key"), addr, filepath.Join(dir, "ca.pem"), authLog))

	stopCentral, _, centralErr := startCmd(t, "central", "--config", centralHCL, "--log-level", "warn")
	waitFor(t, 20*time.Second, "central to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	stopAgent, _, agentErr := startCmd(t, "agent", "--config", agentHCL, "--log-level", "warn")
	stamp := time.Now().Format("Jan _2 15:04:05")
	lines := fmt.Sprintf(`%[1]s web-01 useradd[4242]: new user: name=alice, UID=2001, GID=2001, home=/home/alice, shell=/bin/bash, from=/dev/pts/1
%[1]s web-01 usermod[4250]: add 'alice' to group 'sudo'
%[1]s web-01 usermod[4251]: add 'bob' to group 'users'
`, stamp)
	if err := os.WriteFile(authLog, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	alertsJSON := func(args ...string) []central.AlertView {
		code, out, errs := runCmd(t, append([]string{"query", "alerts", "--config", centralHCL, "--format", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("query alerts: %d %s", code, errs)
		}
		var out2 []central.AlertView
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var a central.AlertView
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			out2 = append(out2, a)
		}
		return out2
	}
	var grants []central.AlertView
	waitFor(t, 10*time.Second, "the sudo_grant alert", func() bool {
		grants = alertsJSON("--rule", "sudo_grant")
		return len(grants) > 0
	})
	if len(grants) != 1 || len(grants[0].Events) != 1 || grants[0].Acknowledged {
		t.Fatalf("sudo_grant alerts: %+v", grants)
	}
	waitFor(t, 10*time.Second, "the file notifier", func() bool {
		b, _ := os.ReadFile(alertsFile)
		return strings.Contains(string(b), `"rule":"sudo_grant"`)
	})
	// Table output over HTTPS.
	ca := filepath.Join(dir, "ca.pem")
	code, table, errs := runCmd(t, "query", "alerts", "--url", "https://"+addr, "--ca", ca, "--open")
	if code != 0 || !strings.Contains(table, "sudo_grant") || !strings.Contains(table, "RULE") {
		t.Fatalf("query alerts --url: %d %q %s", code, table, errs)
	}
	// Entitlements: alice holds sudo, bob users; drift over the last hour.
	code, out, errs := runCmd(t, "query", "entitlements", "--config", centralHCL, "--group", "sudo")
	if code != 0 || !strings.Contains(out, "alice") || strings.Contains(out, "bob") {
		t.Fatalf("entitlements: %d %q %s", code, out, errs)
	}
	waitFor(t, 10*time.Second, "bob's membership", func() bool {
		code, out, errs = runCmd(t, "query", "entitlements", "--url", "https://"+addr, "--ca", ca, "--group", "users", "--format", "json")
		return code != 0 || out != ""
	})
	if code != 0 || !strings.Contains(out, `"user":"bob"`) || strings.Contains(out, "alice") {
		_, all, _ := runCmd(t, "query", "entitlements", "--config", centralHCL)
		_, evs, _ := runCmd(t, "query", "--config", centralHCL, "--format", "ndjson")
		t.Fatalf("entitlements --url: %d %q %s\nall:\n%s\nevents:\n%s", code, out, errs, all, evs)
	}
	code, out, errs = runCmd(t, "query", "drift", "--url", "https://"+addr, "--ca", ca, "--from", "1h")
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Fatalf("drift: %d %q %s", code, out, errs)
	}
	code, out, _ = runCmd(t, "query", "drift", "--config", centralHCL, "--from", "2020-01-01", "--to", "2020-02-01")
	if code != 0 || strings.Contains(out, "alice") {
		t.Fatalf("drift in 2020: %d %q", code, out)
	}
	// Acknowledge over HTTPS from loopback.
	code, out, errs = runCmd(t, "query", "alerts", "ack", fmt.Sprint(grants[0].ID), "--url", "https://"+addr, "--ca", ca)
	if code != 0 || !strings.Contains(out, "acknowledged") {
		t.Fatalf("ack --url: %d %q %s", code, out, errs)
	}
	if open := alertsJSON("--rule", "sudo_grant", "--open"); len(open) != 0 {
		t.Fatalf("still open: %+v", open)
	}
	if code, _, errs := runCmd(t, "query", "alerts", "ack", "nope", "--config", centralHCL); code != exitFailure {
		t.Fatalf("ack of unknown id: %d %s", code, errs)
	}

	// The agent heartbeats every second: not silent while it runs.
	time.Sleep(hb + margin + time.Second)
	if s := alertsJSON("--rule", "builtin.silent_agent"); len(s) != 0 {
		t.Fatalf("silent while running: %+v", s)
	}
	if code := stopAgent(); code != 0 {
		t.Fatalf("agent exit %d: %s", code, agentErr.String())
	}
	stopped := time.Now()
	var silent []central.AlertView
	waitFor(t, hb+margin+3*time.Second, "the silent agent alert", func() bool {
		silent = alertsJSON("--rule", "builtin.silent_agent")
		return len(silent) > 0
	})
	t.Logf("agent reported silent %s after it stopped (heartbeat %s + margin %s)", time.Since(stopped).Round(10*time.Millisecond), hb, margin)
	if silent[0].Agent != "web-01" || len(silent) != 1 {
		t.Fatalf("silent alerts %+v", silent)
	}
	// Acknowledge through the store while central runs.
	if code, out, errs := runCmd(t, "query", "alerts", "ack", silent[0].AlertID, "--config", centralHCL); code != 0 || !strings.Contains(out, "by cli") {
		t.Fatalf("ack --config: %d %q %s", code, out, errs)
	}
	if code := stopCentral(); code != 0 {
		t.Fatalf("central exit %d: %s", code, centralErr.String())
	}
}
