package windowtest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RSAKey returns a fresh 2048-bit RSA key and its PKCS #8 PEM encoding,
// for the key files of OAuth service accounts and apps that sign JWTs.
func RSAKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ServiceAccount writes a Google service-account key file for email, with
// a fresh key and tokenURI as its token_uri, to a temporary directory and
// returns its path and the public key that verifies its assertions.
func ServiceAccount(t *testing.T, email, tokenURI string) (string, *rsa.PublicKey) {
	t.Helper()
	key, pemKey := RSAKey(t)
	b, err := json.Marshal(map[string]any{"type": "service_account", "project_id": "p1", "private_key_id": "k1",
		"private_key": string(pemKey), "client_email": email, "client_id": "1", "token_uri": tokenURI})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, &key.PublicKey
}

// VerifyJWT checks jwt's RS256 signature with pub and decodes its claims
// into claims, as a token endpoint does with an assertion; it reports
// whether both worked.
func VerifyJWT(jwt string, pub *rsa.PublicKey, claims any) bool {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	return err == nil && json.Unmarshal(b, claims) == nil
}
