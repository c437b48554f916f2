package status

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/signer"
)

func key(t testing.TB, kt signer.KeyType) *signer.PrivateKey {
	t.Helper()
	priv, err := signer.GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signer.NewPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	for _, kt := range []signer.KeyType{signer.KeyEd25519, signer.KeyECDSAP256} {
		k, other := key(t, kt), key(t, kt)
		r := Report{Audience: "aud", AgentID: "a1", Created: now, Problems: []Problem{{Kind: KindSourceGap, Source: "ldap.main", Detail: "gap: purged", Since: now}}}
		env, err := Sign(ctx, k, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Verify(env, k.Public(), "aud", now)
		if err != nil {
			t.Fatalf("%s: %v", kt, err)
		}
		if got.AgentID != "a1" || len(got.Problems) != 1 || got.Problems[0].Source != "ldap.main" || !got.Created.Equal(now.UTC()) {
			t.Fatalf("%s: %+v", kt, got)
		}
		for name, check := range map[string]func() error{
			"other key":      func() error { _, err := Verify(env, other.Public(), "aud", now); return err },
			"other audience": func() error { _, err := Verify(env, k.Public(), "aud2", now); return err },
			"clock skew":     func() error { _, err := Verify(env, k.Public(), "aud", now.Add(time.Hour)); return err },
			"tampered": func() error {
				bad := strings.Replace(string(env), `"payload":"`, `"payload":"e`, 1)
				_, err := Verify([]byte(bad), k.Public(), "aud", now)
				return err
			},
		} {
			if check() == nil {
				t.Errorf("%s: %s accepted", kt, name)
			}
		}
	}
	// An ECDSA key that is not the signer's type is refused cleanly.
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	env, _ := Sign(ctx, key(t, signer.KeyEd25519), Report{Audience: "aud", AgentID: "a1"})
	if _, err := Verify(env, &ek.PublicKey, "aud", time.Now()); err == nil {
		t.Error("ed25519 signature accepted by an ECDSA key")
	}
}

func TestOpenRejects(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad-*.json")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := Open(b); err == nil {
			t.Errorf("%s: accepted", f)
		}
	}
	if _, _, _, err := Open(make([]byte, MaxEnvelope+1)); err == nil {
		t.Error("oversized envelope accepted")
	}
}

// FuzzOpen: any input is refused or parsed, never a panic, and what
// parses has passed the report checks.
func FuzzOpen(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, payload, sig, err := Open(data)
		if err != nil {
			return
		}
		if r.V != 1 || r.AgentID == "" || len(r.Problems) > MaxProblems || payload == nil || sig == nil {
			t.Fatalf("accepted %+v", r)
		}
	})
}
