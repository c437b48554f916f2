package signer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/kms/fake"
)

func TestLoadPrivateKeyFiles(t *testing.T) {
	ctx := context.Background()
	pass := testPassphrase(t)
	for _, name := range []string{"identity", "identity-p256", "other"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "keys", name+".key")
			k, err := LoadPrivateKey(ctx, path, pass)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := LoadPublicKey(filepath.Join("testdata", "keys", name+".pub"))
			if err != nil {
				t.Fatal(err)
			}
			if err := cryptoutils.EqualKeys(pub, k.Public()); err != nil {
				t.Fatalf("private and public key files differ: %v", err)
			}
			if strings.Contains(k.String(), "PRIVATE") || !strings.Contains(k.String(), k.KeyID()) {
				t.Fatalf("String() = %q", k.String())
			}
			sig, err := k.Sign(ctx, []byte("msg"))
			if err != nil {
				t.Fatal(err)
			}
			if err := verifySig(pub, []byte("x"), sig); err == nil {
				t.Fatal("signature over another message verified")
			}
			_, err = LoadPrivateKey(ctx, path, []byte("wrong"))
			if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
				t.Fatalf("wrong passphrase: %v", err)
			}
			if _, err := LoadPrivateKey(ctx, path, nil); !errors.Is(err, ErrEncryptedKey) {
				t.Fatalf("no passphrase: %v", err)
			}
		})
	}
}

func TestLoadPrivateKeyPlainAndBad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	priv, err := GenerateKey(KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	keyPath, pubPath, err := WriteKeyPair(dir, "plain", priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(keyPath)
	if !bytes.HasPrefix(data, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Fatalf("unencrypted key: %.40q", data)
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	k, err := LoadPrivateKey(ctx, keyPath, []byte("ignored"))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := LoadPublicKey(pubPath)
	if id, _ := KeyID(pub); id != k.KeyID() {
		t.Fatal("key id mismatch")
	}
	if _, _, err := WriteKeyPair(dir, "plain", priv, nil); err == nil {
		t.Fatal("overwrote an existing key")
	}
	if _, _, err := WriteKeyPair(dir, "../x", priv, nil); err == nil {
		t.Fatal("accepted a name with a slash")
	}
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := LoadPrivateKey(ctx, bad, nil); err == nil || !strings.Contains(err.Error(), "no PEM block") {
		t.Fatalf("not PEM: %v", err)
	}
	rsaPEM := filepath.Join(dir, "rsa.key")
	rsaKey, _, err := cryptoutils.GeneratePEMEncodedRSAKeyPair(2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(rsaPEM, rsaKey, 0o600)
	if _, err := LoadPrivateKey(ctx, rsaPEM, nil); err == nil || !strings.Contains(err.Error(), "unsupported") {
		t.Fatalf("rsa: %v", err)
	}
	if _, err := LoadPrivateKey(ctx, filepath.Join(dir, "missing.key"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := GenerateKey("rsa-4096"); err == nil {
		t.Fatal("GenerateKey accepted rsa")
	}
}

func TestLoadPrivateKeyKMS(t *testing.T) {
	ctx := context.Background()
	// fakekms:// is sigstore's in-process KMS provider (registered by importing kms/fake).
	k, err := LoadPrivateKey(ctx, fake.ReferenceScheme+"agent", nil)
	if err != nil {
		t.Fatalf("fakekms: %v", err)
	}
	sig, err := k.Sign(ctx, PAE(PayloadType, []byte("{}")))
	if err != nil {
		t.Fatal(err)
	}
	if err := verifySig(k.Public(), []byte("{}"), sig); err != nil {
		t.Fatalf("KMS signature does not verify: %v", err)
	}
	t.Setenv("PATH", t.TempDir()) // no sigstore-kms-* plugins
	for _, ref := range []string{"awskms:///arn:aws:kms:eu-west-1:1:key/x", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "azurekms://vault.vault.azure.net/key", "hashivault://agent"} {
		_, err := LoadPrivateKey(ctx, ref, nil)
		if err == nil || !strings.Contains(err.Error(), "not linked into this build") {
			t.Errorf("%s: %v", ref, err)
		}
	}
	if IsKMSRef("/etc/provtrail/agent.key") || !IsKMSRef("hashivault://x") {
		t.Fatal("IsKMSRef")
	}
}

func TestKeyID(t *testing.T) {
	pub, err := LoadPublicKey(filepath.Join("testdata", "keys", "identity.pub"))
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	id, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	if id != hex.EncodeToString(sum[:]) || len(id) != 64 {
		t.Fatalf("KeyID %s", id)
	}
	if got := ed25519KeyID(pub.(ed25519.PublicKey)); got != id {
		t.Fatalf("ed25519KeyID %s != KeyID %s", got, id)
	}
}

func TestPassphraseSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p")
	os.WriteFile(file, []byte("from-file\r\n"), 0o600)
	empty := filepath.Join(dir, "e")
	os.WriteFile(empty, []byte("\n"), 0o600)
	env := func(k string) string {
		if k == "MY_PASS" || k == DefaultPassphraseEnv {
			return "from-env-" + k
		}
		return ""
	}
	tests := []struct {
		src  PassphraseSource
		want string
		err  string
	}{
		{PassphraseSource{File: file, Getenv: env}, "from-file", ""},
		{PassphraseSource{File: empty}, "", "is empty"},
		{PassphraseSource{Getenv: env}, "from-env-" + DefaultPassphraseEnv, ""},
		{PassphraseSource{Env: "MY_PASS", Getenv: env}, "from-env-MY_PASS", ""},
		{PassphraseSource{NoEnv: true, Getenv: env}, "", "no passphrase"},
	}
	for i, tc := range tests {
		got, err := tc.src.Resolve()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%d: err %v, want %q", i, err, tc.err)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%d: %q, %v; want %q", i, got, err, tc.want)
		}
	}
}

// TestIdentityKinds starts streams with a P-256 identity made by keygen and with a KMS
// identity (sigstore fakekms, ECDSA P-256), and verifies them.
func TestIdentityKinds(t *testing.T) {
	ctx := context.Background()
	kmsKey, err := LoadPrivateKey(ctx, fake.ReferenceScheme+"identity", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]*PrivateKey{"p256-file": loadTestKey(t, "identity-p256"), "fakekms": kmsKey} {
		t.Run(name, func(t *testing.T) {
			pemPub, err := MarshalPublicKeyPEM(id.Public())
			if err != nil {
				t.Fatal(err)
			}
			c := newCentral(t, vecAudience, vecAgent, string(pemPub), Limits{})
			a := newSim(t, filepath.Join(t.TempDir(), "s"), ChainConfig{Audience: vecAudience, AgentID: vecAgent, Identity: id}, name)
			b0 := a.seal(2, 0)
			if h := decodeBatchHeader(t, b0); h.KeyID != id.KeyID() {
				t.Fatalf("seq 0 key id %s, want identity %s", h.KeyID, id.KeyID())
			}
			mustAccept(t, c, b0, Accepted)
			mustAccept(t, c, a.seal(1, 2), Accepted)
			mustAccept(t, c, b0, Duplicate)
			// A seq 0 signed by the Ed25519 test identity is not this agent's.
			other := newSim(t, filepath.Join(t.TempDir(), "o"), chainCfg(t), name+"-other")
			mustAccept(t, c, other.seal(1, 0), UnknownKey)
		})
	}
}
