package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/signer"
)

// syncBuffer is a bytes.Buffer safe for a command writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeTestPKI writes ca.pem, central.crt and central.key for 127.0.0.1.
func writeTestPKI(t *testing.T, dir string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "central"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	writeFile(t, dir, "central.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, dir, "central.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func genKey(t *testing.T, dir, name string, pass []byte) {
	t.Helper()
	priv, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.WriteKeyPair(dir, name, priv, pass); err != nil {
		t.Fatal(err)
	}
}

// startCmd runs a subcommand in the background until the test ends.
func startCmd(t *testing.T, args ...string) (cancel func() int, out, errOut *syncBuffer) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	out, errOut = &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, out, errOut) }()
	var once sync.Once
	code := 0
	cancel = func() int {
		once.Do(func() {
			stop()
			select {
			case code = <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("%s did not stop", args[0])
			}
		})
		return code
	}
	t.Cleanup(func() { cancel() })
	return cancel, out, errOut
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCentralAgentEndToEnd runs central over TLS and the agent (the same
// code as the binary's subcommands), appends to an auth log, and checks the
// changes are queryable within 2 seconds, exactly once, and verify passes.
func TestCentralAgentEndToEnd(t *testing.T) {
	dir := t.TempDir()
	writeTestPKI(t, dir)
	genKey(t, dir, "log", []byte("log secret"))
	writeFile(t, dir, "log.pass", "log secret\n")
	genKey(t, dir, "web-01", nil)
	addr := freePort(t)
	centralHCL := writeFile(t, dir, "central.hcl", fmt.Sprintf(`
central {
  listen   = %q
  data_dir = %q
  audience = "e2e-central"
}
tls {
  cert_file = "central.crt"
  key_file  = "central.key"
}
log_signer {
  key_file        = "log.key"
  passphrase_file = "log.pass"
  origin          = "e2e.test/log"
}
agent "web-01" {
  public_key_file = "web-01.pub"
}
`, addr, filepath.Join(dir, "data")))
	authLog := writeFile(t, dir, "auth.log", "")
	agentHCL := writeFile(t, dir, "agent.hcl", fmt.Sprintf(`
agent {
  id        = "web-01"
  state_dir = %q
}
signer {
  key_file = %q
}
forward {
  url            = "https://%s"
  audience       = "e2e-central"
  ca_file        = %q
  batch_max_wait = "100ms"
  log_key_file   = "agent-copy-of-log.vkey"
  proof_interval = "200ms"
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
	// The agent holds its own copy of the log's key, as an auditor does.
	logKey, err := os.ReadFile(filepath.Join(dir, "data", central.LogDir, central.LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "agent-copy-of-log.vkey", string(logKey))
	// A key that is not the log's is caught before the agent runs.
	_, otherKey, err := note.GenerateKey(rand.Reader, "e2e.test/log")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "agent-copy-of-log.vkey", otherKey)
	if code, out, _ := runCmd(t, "agent", "--config", agentHCL, "--check"); code != 1 || !strings.Contains(out, "does not verify under this key") {
		t.Fatalf("agent --check with another log key: %d\n%s", code, out)
	}
	writeFile(t, dir, "agent-copy-of-log.vkey", string(logKey))
	if code, out, errs := runCmd(t, "agent", "--config", agentHCL, "--check"); code != 0 || !strings.Contains(out, "checkpoint verifies under it") {
		t.Fatalf("agent --check: %d\n%s\n%s", code, out, errs)
	}
	stopAgent, _, agentErr := startCmd(t, "agent", "--config", agentHCL, "--log-level", "warn")

	query := func(args ...string) []map[string]any {
		code, out, errs := runCmd(t, append([]string{"query", "--config", centralHCL, "--format", "ndjson"}, args...)...)
		if code != 0 {
			t.Fatalf("query: %d %s", code, errs)
		}
		var evs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("query output %q: %v", line, err)
			}
			evs = append(evs, m)
		}
		return evs
	}

	stamp := time.Now().Format("Jan _2 15:04:05")
	lines := fmt.Sprintf(`%[1]s web-01 useradd[4242]: new group: name=alice, GID=2001
%[1]s web-01 useradd[4242]: new user: name=alice, UID=2001, GID=2001, home=/home/alice, shell=/bin/bash, from=/dev/pts/1
%[1]s web-01 usermod[4250]: add 'alice' to group 'sudo'
`, stamp)
	f, err := os.OpenFile(authLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	appended := time.Now()
	f.WriteString(lines)
	f.Close()
	var got []map[string]any
	waitFor(t, 10*time.Second, "events at central", func() bool {
		got = query("--host", "web-01")
		return len(got) >= 3
	})
	took := time.Since(appended)
	t.Logf("3 changes queryable at central %v after they were appended", took)
	if took > 2*time.Second {
		t.Errorf("events took %v to reach central, want < 2s", took)
	}
	// Exactly once, even after heartbeats and a while more.
	time.Sleep(700 * time.Millisecond)
	got = query("--host", "web-01")
	ids := map[string]int{}
	for _, e := range got {
		ids[e["id"].(string)]++
	}
	if len(got) != 3 || len(ids) != 3 {
		t.Fatalf("want 3 distinct events, got %d (%v)", len(got), ids)
	}
	if u := query("--user", "alice", "--action", "user.create"); len(u) != 1 {
		t.Fatalf("user.create for alice: %d", len(u))
	}
	code, table, _ := runCmd(t, "query", "--config", centralHCL, "--group", "sudo")
	if code != 0 || !strings.Contains(table, "alice") || !strings.Contains(table, "ACTION") {
		t.Fatalf("table query: %d %q", code, table)
	}
	// The same query over HTTPS, paginated (limit 1 per page).
	code, out, errs := runCmd(t, "query", "--url", "https://"+addr, "--ca", filepath.Join(dir, "ca.pem"), "--host", "web-01", "--since", "1h", "--format", "ndjson")
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(out, `"name":"alice"`) {
		t.Fatalf("query --url: %d %q %s", code, out, errs)
	}
	// Agents overview.
	code, agents, _ := runCmd(t, "central", "agents", "list", "--config", centralHCL)
	if code != 0 || !strings.Contains(agents, "web-01") || !strings.Contains(agents, " ok ") {
		t.Fatalf("agents: %d %q", code, agents)
	}
	// Verify against the running central with the auditor's own key copy.
	vkey, err := os.ReadFile(filepath.Join(dir, "data", central.LogDir, central.LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	keyCopy := writeFile(t, dir, "auditor.vkey", string(vkey))
	cp := filepath.Join(dir, "seen.checkpoint")
	// Receipts are acknowledged before a checkpoint covers them; wait for
	// the proof of the first one, as an agent fetching its proof would.
	hc, err := httpClient(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a checkpoint covering log index 0", func() bool {
		resp, err := hc.Get("https://" + addr + "/v1/proofs/index/0")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	code, out, errs = runCmd(t, "verify", "--url", "https://"+addr, "--ca", filepath.Join(dir, "ca.pem"), "--log-key", keyCopy, "--save-checkpoint", cp, "--inclusion", "0")
	if code != 0 || !strings.Contains(out, "verified: no problems found") || !strings.Contains(out, "ok   inclusion of log index 0 (agent web-01") {
		t.Fatalf("verify --url: %d\n%s\n%s", code, out, errs)
	}

	// The agent fetched and checked the inclusion proof of every batch
	// central acknowledged.
	countLines := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(dir, "state", "receipts", name))
		return strings.Count(string(b), "\n")
	}
	waitFor(t, 15*time.Second, "inclusion proofs for every acknowledged batch", func() bool {
		n := countLines("receipts.ndjson")
		return n > 0 && countLines("proofs.ndjson") >= n
	})
	proofs, err := os.ReadFile(filepath.Join(dir, "state", "receipts", "proofs.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(proofs)), "\n") {
		var pr struct {
			Seq       uint64 `json:"seq"`
			TLogProof string `json:"tlog_proof"`
		}
		if err := json.Unmarshal([]byte(line), &pr); err != nil || !strings.HasPrefix(pr.TLogProof, "c2sp.org/tlog-proof@v1\n") {
			t.Fatalf("proof line %q: %v", line, err)
		}
	}
	t.Logf("agent proved %d batches in central's log", countLines("proofs.ndjson"))

	if code := stopAgent(); code != 0 {
		t.Fatalf("agent exit %d: %s", code, agentErr.String())
	}
	if code := stopCentral(); code != 0 {
		t.Fatalf("central exit %d: %s", code, centralErr.String())
	}
	code, out, errs = runCmd(t, "verify", "--config", centralHCL, "--log-key", keyCopy, "--previous", cp)
	if code != 0 || !strings.Contains(out, "ok   consistency with the previous checkpoint") || !strings.Contains(out, "3 stored events") {
		t.Fatalf("verify --config: %d\n%s\n%s", code, out, errs)
	}
	t.Logf("verify output:\n%s", out)

	// Tampering with a stored event makes verify fail with the reason.
	dataDir := filepath.Join(dir, "data")
	if err := tamperSQLite(filepath.Join(dataDir, central.EventsFile), `UPDATE events SET user_name = 'mallory' WHERE user_name = 'alice' AND action = 'user.create'`); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "verify", "--config", centralHCL, "--quiet")
	if code != 1 || !strings.Contains(out, `user "mallory", body has "alice"`) {
		t.Fatalf("verify after tampering: %d\n%s", code, out)
	}
}

// TestEnrollWithToken enrolls an agent with a limited-use token that needs
// approval, through the CLI against a running central.
func TestEnrollWithToken(t *testing.T) {
	dir := t.TempDir()
	writeTestPKI(t, dir)
	genKey(t, dir, "log", nil)
	genKey(t, dir, "host-9", nil)
	addr := freePort(t)
	centralHCL := writeFile(t, dir, "central.hcl", fmt.Sprintf(`
central {
  listen   = %q
  data_dir = %q
}
tls {
  cert_file = "central.crt"
  key_file  = "central.key"
}
log_signer {
  key_file = "log.key"
}
`, addr, filepath.Join(dir, "data")))
	stop, _, _ := startCmd(t, "central", "--config", centralHCL, "--log-level", "error")
	defer stop()
	waitFor(t, 20*time.Second, "central to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	code, tok, errs := runCmd(t, "central", "tokens", "create", "--config", centralHCL, "--uses", "1", "--require-approval")
	if code != 0 || !strings.HasPrefix(tok, central.TokenPrefix) {
		t.Fatalf("tokens create: %d %q %s", code, tok, errs)
	}
	tokFile := writeFile(t, dir, "token", tok)
	enroll := func(id string) (int, string, string) {
		return runCmd(t, "enroll", "--url", "https://"+addr, "--ca", filepath.Join(dir, "ca.pem"), "--id", id, "--key", filepath.Join(dir, "host-9.key"), "--token-file", tokFile)
	}
	code, out, errs := enroll("host-9")
	if code != 0 || !strings.Contains(out, "pending") {
		t.Fatalf("enroll: %d %q %s", code, out, errs)
	}
	// One use only.
	if code, _, errs := enroll("host-10"); code != 1 || !strings.Contains(errs, "used up") {
		t.Fatalf("second enroll: %d %s", code, errs)
	}
	code, out, _ = runCmd(t, "central", "agents", "--config", centralHCL)
	if code != 0 || !strings.Contains(out, "host-9") || !strings.Contains(out, "pending") {
		t.Fatalf("agents list: %d %q", code, out)
	}
	if code, out, _ := runCmd(t, "central", "agents", "approve", "host-9", "--config", centralHCL); code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("approve: %d %q", code, out)
	}
	if code, out, _ := runCmd(t, "central", "agents", "revoke", "host-9", "--config", centralHCL); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %q", code, out)
	}
}
