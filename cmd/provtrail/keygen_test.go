package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/signer"
)

var writeSignerTestKeys = flag.Bool("write-signer-testkeys", false, "regenerate signer/testdata/keys with keygen")

const testPass = "correct horse battery staple"

func noEnv(string) string { return "" }

func envWith(name, val string) func(string) string {
	return func(k string) string {
		if k == name {
			return val
		}
		return ""
	}
}

func TestKeygenUsage(t *testing.T) {
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte(testPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		getenv func(string) string
		code   int
		stderr string
		stdout string
	}{
		{"help", []string{"--help"}, noEnv, exitOK, "", "Usage: provtrail keygen"},
		{"no out", []string{"--passphrase-file", passFile}, noEnv, exitUsage, "--out DIR is required", ""},
		{"bad type", []string{"--out", dir, "--type", "rsa"}, noEnv, exitUsage, "--type must be", ""},
		{"extra arg", []string{"--out", dir, "extra"}, noEnv, exitUsage, "unexpected argument", ""},
		{"unknown flag", []string{"--bogus"}, noEnv, exitUsage, "flag provided but not defined", ""},
		{"no passphrase", []string{"--out", filepath.Join(dir, "k1")}, noEnv, exitUsage, "no passphrase", ""},
		{"missing passphrase file", []string{"--out", dir, "--passphrase-file", filepath.Join(dir, "nope")}, noEnv, exitFailure, "read passphrase file", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := keygen(tc.args, &out, &errb, nil, tc.getenv)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.stderr) || !strings.Contains(out.String(), tc.stdout) {
				t.Fatalf("stdout %q / stderr %q, want %q / %q", out.String(), errb.String(), tc.stdout, tc.stderr)
			}
		})
	}
}

var keyIDLine = regexp.MustCompile(`(?m)^key id:\s+([0-9a-f]{64})$`)

// runKeygenT runs keygen and returns the printed key id.
func runKeygenT(t *testing.T, args []string, getenv func(string) string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := keygen(args, &out, &errb, nil, getenv); code != exitOK {
		t.Fatalf("keygen %v: exit %d: %s", args, code, errb.String())
	}
	all := out.String() + errb.String()
	if strings.Contains(all, "PRIVATE KEY") || strings.Contains(all, "BEGIN") || strings.Contains(all, testPass) {
		t.Fatalf("keygen printed key material or the passphrase: %s", all)
	}
	m := keyIDLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no key id in output %q", out.String())
	}
	return m[1]
}

func TestKeygenKeysLoadBack(t *testing.T) {
	ctx := context.Background()
	for _, typ := range []string{"ed25519", "ecdsa-p256"} {
		t.Run(typ, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			id := runKeygenT(t, []string{"--out", dir, "--name", "agent", "--type", typ}, envWith(signer.DefaultPassphraseEnv, testPass))
			keyPath := filepath.Join(dir, "agent.key")
			st, err := os.Stat(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
			}
			pemData, _ := os.ReadFile(keyPath)
			if !bytes.HasPrefix(pemData, []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")) {
				t.Fatalf("key file is not an encrypted sigstore key: %.60q", pemData)
			}
			k, err := signer.LoadPrivateKey(ctx, keyPath, []byte(testPass))
			if err != nil {
				t.Fatalf("load with right passphrase: %v", err)
			}
			if k.KeyID() != id {
				t.Fatalf("loaded key id %s, keygen printed %s", k.KeyID(), id)
			}
			switch k.Public().(type) {
			case ed25519.PublicKey:
				if typ != "ed25519" {
					t.Fatalf("got ed25519 for %s", typ)
				}
			case *ecdsa.PublicKey:
				if typ != "ecdsa-p256" {
					t.Fatalf("got ecdsa for %s", typ)
				}
			}
			pub, err := signer.LoadPublicKey(filepath.Join(dir, "agent.pub"))
			if err != nil {
				t.Fatal(err)
			}
			if pid, _ := signer.KeyID(pub); pid != id {
				t.Fatalf("public key id %s, want %s", pid, id)
			}
			_, err = signer.LoadPrivateKey(ctx, keyPath, []byte("wrong passphrase"))
			if err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
				t.Fatalf("wrong passphrase: err = %v", err)
			}
			if strings.Contains(err.Error(), testPass) {
				t.Fatal("error message contains the passphrase")
			}
			if _, err := signer.LoadPrivateKey(ctx, keyPath, nil); !errors.Is(err, signer.ErrEncryptedKey) {
				t.Fatalf("no passphrase: err = %v, want ErrEncryptedKey", err)
			}
			// Refuses to overwrite.
			var out, errb bytes.Buffer
			if code := keygen([]string{"--out", dir, "--type", typ}, &out, &errb, nil, envWith(signer.DefaultPassphraseEnv, testPass)); code != exitFailure || !strings.Contains(errb.String(), "already exists") {
				t.Fatalf("overwrite: exit %d, stderr %s", code, errb.String())
			}
		})
	}
}

func TestKeygenPassphraseFile(t *testing.T) {
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	if err := os.WriteFile(passFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file wins over the environment.
	runKeygenT(t, []string{"--out", dir, "--name", "f", "--passphrase-file", passFile}, envWith(signer.DefaultPassphraseEnv, "from-env"))
	if _, err := signer.LoadPrivateKey(context.Background(), filepath.Join(dir, "f.key"), []byte("from-file")); err != nil {
		t.Fatalf("load with file passphrase: %v", err)
	}
	if _, err := signer.LoadPrivateKey(context.Background(), filepath.Join(dir, "f.key"), []byte("from-env")); err == nil {
		t.Fatal("env passphrase used although --passphrase-file was given")
	}
}

// TestKeygenKeysSignVerifiedChain runs a keygen identity key through the agent chain and
// the central verifier: accepted chain, duplicate, gap, forged, tampered.
func TestKeygenKeysSignVerifiedChain(t *testing.T) {
	ctx := context.Background()
	for _, typ := range []string{"ed25519", "ecdsa-p256"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			runKeygenT(t, []string{"--out", dir, "--type", typ}, envWith(signer.DefaultPassphraseEnv, testPass))
			id, err := signer.LoadPrivateKey(ctx, filepath.Join(dir, "agent.key"), []byte(testPass))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := signer.LoadPublicKey(filepath.Join(dir, "agent.pub"))
			if err != nil {
				t.Fatal(err)
			}
			chain, err := signer.OpenChain(ctx, signer.ChainConfig{Dir: filepath.Join(dir, "state"), Audience: "central-test", AgentID: "host-1", Identity: id, Encoding: signer.EncodingZstd})
			if err != nil {
				t.Fatal(err)
			}
			defer chain.Close()
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			var batches []signer.Batch
			for i := range 4 {
				body := []byte(strings.Repeat(`{"action":"user.create"}`+"\n", i))
				b, err := chain.Seal(ctx, body, signer.Meta{FirstTime: now, LastTime: now}, nil)
				if err != nil {
					t.Fatal(err)
				}
				batches = append(batches, b)
			}
			v, err := signer.NewVerifier(signer.VerifierConfig{Audience: "central-test"})
			if err != nil {
				t.Fatal(err)
			}
			st, err := signer.NewStreamState("host-1", pub)
			if err != nil {
				t.Fatal(err)
			}
			expect := func(b signer.Batch, want signer.Verdict) {
				t.Helper()
				res, err := v.Verify(ctx, st, b)
				if err != nil {
					t.Fatal(err)
				}
				if res.Verdict != want {
					t.Fatalf("verdict %v (%s), want %v", res.Verdict, res.Reason, want)
				}
				if want == signer.Accepted {
					st = res.Next
				}
			}
			expect(batches[0], signer.Accepted)
			expect(batches[0], signer.Duplicate)
			expect(batches[2], signer.Gap)
			tampered := batches[1]
			tampered.Body = bytes.Clone(tampered.Body)
			tampered.Body[len(tampered.Body)/2] ^= 1
			expect(tampered, signer.BodyMismatch)
			expect(batches[1], signer.Accepted)
			expect(batches[2], signer.Accepted)
			expect(batches[3], signer.Accepted)
		})
	}
}

// TestWriteSignerTestKeys regenerates the keygen-made keys the signer tests and vectors use:
//
//	go test ./cmd/provtrail -run TestWriteSignerTestKeys -write-signer-testkeys
func TestWriteSignerTestKeys(t *testing.T) {
	if !*writeSignerTestKeys {
		t.Skip("pass -write-signer-testkeys to regenerate signer/testdata/keys")
	}
	dir := filepath.Join("..", "..", "signer", "testdata", "keys")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pass := "provtrail-test-vectors-only"
	if err := os.WriteFile(filepath.Join(dir, "passphrase"), []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ name, typ string }{{"identity", "ed25519"}, {"identity-p256", "ecdsa-p256"}, {"other", "ed25519"}} {
		for _, ext := range []string{".key", ".pub"} {
			_ = os.Remove(filepath.Join(dir, k.name+ext))
		}
		runKeygenT(t, []string{"--out", dir, "--name", k.name, "--type", k.typ, "--passphrase-file", filepath.Join(dir, "passphrase")}, noEnv)
	}
}
