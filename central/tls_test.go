package central

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeClientPKI writes a client CA and a client certificate signed by it.
func writeClientPKI(t *testing.T, dir string) (caFile string, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "agents CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "host-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "agents-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTLSClientCertificatesAndPlainHTTP(t *testing.T) {
	var clientCert tls.Certificate
	tc := startTestCentralWith(t, func(cfg *Config) {
		caFile, cert := writeClientPKI(t, filepath.Dir(cfg.TLS.CertFile))
		clientCert = cert
		cfg.TLS.ClientCAFile, cfg.TLS.RequireClientCert = caFile, true
	})
	base := tc.client.Transport.(*http.Transport).TLSClientConfig
	if _, err := tc.client.Get(tc.url + "/healthz"); err == nil {
		t.Fatal("request without a client certificate succeeded")
	}
	withCert := base.Clone()
	withCert.Certificates = []tls.Certificate{clientCert}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: withCert}}
	resp, err := c.Get(tc.url + "/healthz")
	if err != nil {
		t.Fatalf("with client certificate: %v", err)
	}
	resp.Body.Close()
	// TLS 1.1 is refused.
	old := withCert.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	c = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: old}}
	if _, err := c.Get(tc.url + "/healthz"); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}

	// Plain HTTP only in dev mode on loopback.
	for _, tt := range []struct {
		dev    bool
		listen string
		ok     bool
	}{{false, "127.0.0.1:0", false}, {true, "0.0.0.0:0", false}, {true, "127.0.0.1:0", true}} {
		cfg := *tc.cfg
		cfg.TLS = TLSSettings{}
		cfg.Central.Dev, cfg.Central.Listen = tt.dev, tt.listen
		cfg.Central.DataDir = t.TempDir()
		srv, err := New(context.Background(), &cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = srv.Start(context.Background())
		if (err == nil) != tt.ok || (err != nil && !strings.Contains(err.Error(), "refusing plain HTTP")) {
			t.Fatalf("dev=%v listen=%s: %v", tt.dev, tt.listen, err)
		}
		srv.Shutdown(context.Background())
	}
}
