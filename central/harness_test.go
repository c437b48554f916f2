package central

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/signer"
)

const testAudience = "central-test"

// testPKI writes a self-signed CA and a server certificate for 127.0.0.1
// into dir and returns the CA pool.
func testPKI(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "provtrail test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "central"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(caCert)
	return certFile, keyFile, pool
}

type testAgent struct {
	ID      string
	Key     *signer.PrivateKey
	PubFile string
}

func newTestAgent(t testing.TB, dir, id string) *testAgent {
	t.Helper()
	priv, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	_, pubPath, err := signer.WriteKeyPair(dir, id, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signer.NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &testAgent{ID: id, Key: k, PubFile: pubPath}
}

// chain opens a chain for the agent in dir (audience testAudience unless
// aud is given).
func (a *testAgent) chain(t testing.TB, dir string, aud ...string) *signer.Chain {
	t.Helper()
	audience := testAudience
	if len(aud) > 0 {
		audience = aud[0]
	}
	c, err := signer.OpenChain(context.Background(), signer.ChainConfig{Dir: dir, Audience: audience, AgentID: a.ID, Identity: a.Key, Encoding: signer.EncodingZstd})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type testCentral struct {
	srv     *Server
	cfg     *Config
	url     string
	client  *http.Client
	dir     string
	agents  map[string]*testAgent
	logPriv string
}

func startTestCentral(t testing.TB, agentIDs ...string) *testCentral {
	t.Helper()
	return startTestCentralWith(t, nil, agentIDs...)
}

// startTestCentralWith is startTestCentral with a chance to change the
// configuration before central starts.
func startTestCentralWith(t testing.TB, mutate func(*Config), agentIDs ...string) *testCentral {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, pool := testPKI(t, dir)
	logPriv, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	logKey, _, err := signer.WriteKeyPair(dir, "log", logPriv, []byte("log passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(dir, "log.pass")
	os.WriteFile(pass, []byte("log passphrase\n"), 0o600)
	tc := &testCentral{dir: dir, agents: map[string]*testAgent{}, logPriv: logKey}
	cfg := &Config{
		Central: Settings{Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), Audience: testAudience,
			MaxRequestBytes: 4 << 20, MaxBodyBytes: 64 << 20, MaxConcurrent: 16, ReadTimeout: 10 * time.Second, GapTimeout: time.Minute},
		TLS:       TLSSettings{CertFile: certFile, KeyFile: keyFile},
		LogSigner: LogSignerSettings{KeyFile: logKey, PassphraseFile: pass, Origin: "central.test/log"},
	}
	for _, id := range agentIDs {
		a := newTestAgent(t, dir, id)
		tc.agents[id] = a
		cfg.Agents = append(cfg.Agents, AgentEntry{ID: id, PublicKeyFile: a.PubFile})
	}
	if mutate != nil {
		mutate(cfg)
	}
	tc.cfg = cfg
	srv, err := New(context.Background(), cfg, Options{CheckpointInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	tc.srv = srv
	tc.url = "https://" + srv.Addr()
	tc.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return tc
}

// post sends a batch and decodes the receipt.
func (tc *testCentral) post(t testing.TB, b signer.Batch) (int, *Receipt) {
	t.Helper()
	wire, err := signer.MarshalBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	return tc.postRaw(t, wire)
}

func (tc *testCentral) postRaw(t testing.TB, wire []byte) (int, *Receipt) {
	t.Helper()
	resp, err := tc.client.Post(tc.url+"/v1/batches", signer.BatchMediaType, bytes.NewReader(wire))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Receipt
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("receipt %q: %v", body, err)
	}
	return resp.StatusCode, &r
}

func (tc *testCentral) getJSON(t testing.TB, path string, v any) int {
	t.Helper()
	resp, err := tc.client.Get(tc.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %q: %v", path, body, err)
		}
	}
	return resp.StatusCode
}

func testEventsAt(prefix string, n int, t0 time.Time) ([]byte, signer.Meta) {
	var buf bytes.Buffer
	for i := range n {
		ts := t0.Add(time.Duration(i) * time.Second)
		fmt.Fprintf(&buf, `{"id":"%s-%d","time":%q,"observed_time":%q,"action":"group.member.add","outcome":"success","severity":"medium","actor":{"name":"root","uid":0,"type":"human"},"target":{"user":{"name":"user%d"},"group":{"name":"wheel"}},"origin":{"system":"linux","host":"host-%s","program":"gpasswd"},"source":{"collector":"authlog"},"ocsf":{"class_uid":3006,"activity_id":3,"type_uid":300603,"category_uid":3}}`+"\n",
			prefix, i, ts.Format(time.RFC3339Nano), ts.Format(time.RFC3339Nano), i, prefix)
	}
	return buf.Bytes(), signer.Meta{FirstTime: t0, LastTime: t0.Add(time.Duration(max(n-1, 0)) * time.Second)}
}

func seal(t testing.TB, c *signer.Chain, prefix string, n int) signer.Batch {
	t.Helper()
	return sealAt(t, c, prefix, n, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

func sealAt(t testing.TB, c *signer.Chain, prefix string, n int, t0 time.Time) signer.Batch {
	t.Helper()
	body, meta := testEventsAt(prefix, n, t0)
	if n == 0 {
		body, meta = nil, signer.Meta{}
	}
	b, err := c.Seal(context.Background(), body, meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyDir copies a chain state dir (to fork a chain in tests).
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}
