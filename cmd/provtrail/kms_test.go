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
