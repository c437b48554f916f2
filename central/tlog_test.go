package central

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
)

func testNoteSigner(t testing.TB) *NoteSigner {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewNoteSigner("provtrail.test/log", priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLogAppendProveReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	signer := testNoteSigner(t)
	l, err := OpenLog(ctx, LogConfig{Dir: dir, Signer: signer, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, 20)
	for i := range leaves {
		leaves[i] = fmt.Appendf(nil, "leaf %d", i)
		idx, dup, err := l.Add(ctx, leaves[i])
		if err != nil {
			t.Fatal(err)
		}
		if idx != uint64(i) || dup {
			t.Fatalf("leaf %d got index %d dup %v", i, idx, dup)
		}
	}
	// The same leaf again is a duplicate with the first index.
	if idx, dup, err := l.Add(ctx, leaves[3]); err != nil || idx != 3 || !dup {
		t.Fatalf("re-add: idx %d dup %v err %v", idx, dup, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cp, raw, err := l.WaitPublished(wctx, 19)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 20 {
		t.Fatalf("checkpoint size %d", cp.Size)
	}
	if _, _, _, err := log.ParseCheckpoint(raw, signer.Name(), signer.Verifier()); err != nil {
		t.Fatalf("checkpoint does not verify: %v", err)
	}
	for i, leaf := range leaves {
		p, err := l.InclusionProof(ctx, uint64(i), cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion(cp, uint64(i), leaf, p); err != nil {
			t.Fatal(err)
		}
		if i == 5 {
			if err := VerifyInclusion(cp, uint64(i), []byte("forged"), p); err == nil {
				t.Fatal("forged leaf verified")
			}
		}
	}
	if _, err := l.InclusionProof(ctx, 20, cp.Size); err == nil {
		t.Fatal("proof beyond checkpoint")
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}

	// Reopen and grow: the new checkpoint is consistent with the old one.
	l2, err := OpenLog(ctx, LogConfig{Dir: dir, Signer: signer, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close(ctx)
	idx, _, err := l2.Add(ctx, []byte("after reopen"))
	if err != nil || idx != 20 {
		t.Fatalf("after reopen: idx %d err %v", idx, err)
	}
	cp2, _, err := l2.WaitPublished(wctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l2.ConsistencyProof(ctx, cp.Size, cp2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(cp, cp2, p); err != nil {
		t.Fatal(err)
	}
	bad := *cp
	bad.Hash = append([]byte(nil), cp.Hash...)
	bad.Hash[0] ^= 1
	if err := VerifyConsistency(&bad, cp2, p); err == nil {
		t.Fatal("consistency with a different root verified")
	}
}
