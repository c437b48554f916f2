package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/signer"
)

// vaultTransit speaks the part of HashiCorp Vault's transit secrets engine
// API that sigstore's hashivault provider uses (GET /v1/transit/keys/NAME,
// POST /v1/transit/sign/NAME[/sha2-256]), for keys held in memory.
type vaultTransit struct {
	t     *testing.T
	token string
	keys  map[string]crypto.Signer
	signs int
}

func (v *vaultTransit) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Vault-Token") != v.token {
		http.Error(w, `{"errors":["permission denied"]}`, http.StatusForbidden)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/transit/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	op, name, _ := strings.Cut(rest, "/")
	name, hashName, _ := strings.Cut(name, "/")
	key := v.keys[name]
	if key == nil {
		http.Error(w, `{"errors":["no such key"]}`, http.StatusNotFound)
		return
	}
	switch {
	case op == "keys" && r.Method == http.MethodGet:
		entry := map[string]any{"creation_time": time.Now().Format(time.RFC3339)}
		switch pub := key.Public().(type) {
		case ed25519.PublicKey:
			entry["name"], entry["public_key"] = "ed25519", base64.StdEncoding.EncodeToString(pub)
		default:
			der, _ := x509.MarshalPKIXPublicKey(pub)
			entry["name"], entry["public_key"] = "P-256", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		}
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"keys": map[string]any{"1": entry}, "latest_version": 1, "type": "ecdsa-p256", "name": name}})
	case op == "sign" && (r.Method == http.MethodPut || r.Method == http.MethodPost): // the Vault client writes with PUT
		var req struct {
			Input     string `json:"input"`
			Prehashed bool   `json:"prehashed"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"errors":["bad request"]}`, http.StatusBadRequest)
			return
		}
		in, err := base64.StdEncoding.DecodeString(req.Input)
		if err != nil {
			http.Error(w, `{"errors":["input is not base64"]}`, http.StatusBadRequest)
			return
		}
		var sig []byte
		switch k := key.(type) {
		case ed25519.PrivateKey:
			// Vault signs ed25519 input as given (pure Ed25519) unless prehashed with sha2-512.
			if req.Prehashed {
				http.Error(w, `{"errors":["ed25519 prehashed needs sha2-512"]}`, http.StatusBadRequest)
				return
			}
			sig = ed25519.Sign(k, in)
		case *ecdsa.PrivateKey:
			if !req.Prehashed {
				h := sha256.Sum256(in)
				in = h[:]
			}
			if hashName != "sha2-256" && hashName != "" {
				http.Error(w, `{"errors":["unsupported hash"]}`, http.StatusBadRequest)
				return
			}
			sig, err = ecdsa.SignASN1(rand.Reader, k, in)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		v.signs++
		json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
			"signature": "vault:v1:" + base64.StdEncoding.EncodeToString(sig), "key_version": 1}})
	default:
		http.NotFound(w, r)
	}
}

// TestVaultTransitIdentity starts a stream whose identity key lives in
// Vault's transit engine, through sigstore's real hashivault client, and
// verifies the first batch with the key's public half as central would.
func TestVaultTransitIdentity(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vault := &vaultTransit{t: t, token: "s.test-token", keys: map[string]crypto.Signer{"agent-p256": p256, "agent-ed25519": ed}}
	srv := httptest.NewServer(vault)
	defer srv.Close()
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", vault.token)
	ctx := context.Background()

	for _, name := range []string{"agent-p256", "agent-ed25519"} {
		t.Run(name, func(t *testing.T) {
			key, err := signer.LoadPrivateKey(ctx, "hashivault://"+name, nil)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if want, _ := signer.KeyID(vault.keys[name].Public()); key.KeyID() != want {
				t.Fatalf("key id %s, want the Vault key's %s", key.KeyID(), want)
			}
			chain, err := signer.OpenChain(ctx, signer.ChainConfig{Dir: filepath.Join(t.TempDir(), "chain"),
				Audience: "kms-test", AgentID: "host-1", Identity: key})
			if err != nil {
				t.Fatal(err)
			}
			defer chain.Close()
			before := vault.signs
			b, err := chain.Seal(ctx, []byte(`{"id":"x"}`+"\n"), signer.Meta{FirstTime: time.Now(), LastTime: time.Now()},
				func(context.Context, signer.Batch) error { return nil })
			if err != nil {
				t.Fatalf("seal: %v", err)
			}
			if vault.signs != before+1 {
				t.Fatalf("Vault signed %d times for a stream start, want 1", vault.signs-before)
			}
			der, _ := x509.MarshalPKIXPublicKey(vault.keys[name].Public())
			v, err := signer.NewVerifier(signer.VerifierConfig{Audience: "kms-test"})
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(ctx, signer.StreamState{AgentID: "host-1", IdentityKey: der}, b)
			if err != nil || res.Verdict != signer.Accepted {
				t.Fatalf("central's verdict on a Vault-signed stream start: %v %v", res.Verdict, err)
			}
		})
	}

	t.Run("wrong token", func(t *testing.T) {
		t.Setenv("VAULT_TOKEN", "s.wrong")
		_, err := signer.LoadPrivateKey(ctx, "hashivault://agent-p256-other", nil)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("err %v", err)
		}
	})
}

// awsKMS speaks the AWS KMS JSON protocol (X-Amz-Target TrentService.*)
// for the three operations sigstore's awskms provider uses, for one ECDSA
// P-256 key held in memory.
type awsKMS struct {
	key   *ecdsa.PrivateKey
	id    string
	signs int
}

func (a *awsKMS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDPROVTRAILTEST/") {
		http.Error(w, `{"__type":"UnrecognizedClientException","message":"bad credentials"}`, http.StatusBadRequest)
		return
	}
	var req struct {
		KeyID            string `json:"KeyId"`
		Message          []byte `json:"Message"`
		MessageType      string `json:"MessageType"`
		SigningAlgorithm string `json:"SigningAlgorithm"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"__type":"ValidationException"}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if req.KeyID != a.id && req.KeyID != "alias/provtrail-agent" {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"NotFoundException","message":"no such key"}`))
		return
	}
	arn := "arn:aws:kms:eu-west-1:111122223333:key/" + a.id
	der, _ := x509.MarshalPKIXPublicKey(a.key.Public())
	switch strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.") {
	case "DescribeKey":
		json.NewEncoder(w).Encode(map[string]any{"KeyMetadata": map[string]any{
			"KeyId": a.id, "Arn": arn, "Enabled": true, "KeyState": "Enabled", "KeySpec": "ECC_NIST_P256",
			"CustomerMasterKeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": []string{"ECDSA_SHA_256"}}})
	case "GetPublicKey":
		json.NewEncoder(w).Encode(map[string]any{"KeyId": arn, "PublicKey": der, "KeySpec": "ECC_NIST_P256",
			"CustomerMasterKeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": []string{"ECDSA_SHA_256"}})
	case "Sign":
		if req.MessageType != "DIGEST" || req.SigningAlgorithm != "ECDSA_SHA_256" || len(req.Message) != sha256.Size {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"ValidationException","message":"want a SHA-256 DIGEST with ECDSA_SHA_256"}`))
			return
		}
		sig, err := ecdsa.SignASN1(rand.Reader, a.key, req.Message)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		a.signs++
		json.NewEncoder(w).Encode(map[string]any{"KeyId": arn, "Signature": sig, "SigningAlgorithm": "ECDSA_SHA_256"})
	default:
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"UnknownOperationException"}`))
	}
}

// TestAWSKMSIdentity does the same with an AWS KMS key, through sigstore's
// awskms provider and the AWS SDK, against a local TLS endpoint.
func TestAWSKMSIdentity(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fake := &awsKMS{key: key, id: "1234abcd-12ab-34cd-56ef-1234567890ab"}
	srv := httptest.NewTLSServer(fake)
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"AWS_CA_BUNDLE": ca, "AWS_ACCESS_KEY_ID": "AKIDPROVTRAILTEST", "AWS_SECRET_ACCESS_KEY": "test-secret",
		"AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"} {
		t.Setenv(k, v)
	}
	ctx := context.Background()
	host := strings.TrimPrefix(srv.URL, "https://")
	for _, ref := range []string{"awskms://" + host + "/" + fake.id, "awskms://" + host + "/alias/provtrail-agent"} {
		t.Run(ref, func(t *testing.T) {
			k, err := signer.LoadPrivateKey(ctx, ref, nil)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			chain, err := signer.OpenChain(ctx, signer.ChainConfig{Dir: filepath.Join(t.TempDir(), "chain"),
				Audience: "kms-test", AgentID: "host-1", Identity: k})
			if err != nil {
				t.Fatal(err)
			}
			defer chain.Close()
			before := fake.signs
			b, err := chain.Seal(ctx, nil, signer.Meta{}, func(context.Context, signer.Batch) error { return nil })
			if err != nil {
				t.Fatalf("seal: %v", err)
			}
			if fake.signs != before+1 {
				t.Fatalf("KMS signed %d times for a stream start", fake.signs-before)
			}
			der, _ := x509.MarshalPKIXPublicKey(key.Public())
			v, err := signer.NewVerifier(signer.VerifierConfig{Audience: "kms-test"})
			if err != nil {
				t.Fatal(err)
			}
			if res, err := v.Verify(ctx, signer.StreamState{AgentID: "host-1", IdentityKey: der}, b); err != nil || res.Verdict != signer.Accepted {
				t.Fatalf("central's verdict on an AWS KMS-signed stream start: %v %v", res.Verdict, err)
			}
		})
	}
	t.Run("unknown key", func(t *testing.T) {
		_, err := signer.LoadPrivateKey(ctx, "awskms://"+host+"/alias/nobody", nil)
		if err == nil || !strings.Contains(err.Error(), "NotFoundException") {
			t.Fatalf("err %v", err)
		}
	})
}
