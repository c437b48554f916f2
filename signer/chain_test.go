package signer

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func chainCfg(t testing.TB) ChainConfig {
	return ChainConfig{Audience: vecAudience, AgentID: vecAgent, Identity: loadTestKey(t, "identity")}
}

func mustAccept(t testing.TB, c *central, b Batch, want Verdict) Result {
	t.Helper()
	res, err := c.receive(context.Background(), frame(t, b))
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != want {
		t.Fatalf("verdict %v (%s), want %v", res.Verdict, res.Reason, want)
	}
	return res
}

func TestChainReopenContinues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, dir, chainCfg(t), "reopen")
	mustAccept(t, c, a.seal(1, 0), Accepted)
	mustAccept(t, c, a.seal(2, 1), Accepted)
	stream := a.chain.Info().StreamID
	a.chain.Close()
	if _, err := a.chain.Seal(context.Background(), nil, Meta{}, nil); !errors.Is(err, ErrChainClosed) {
		t.Fatalf("seal after close: %v", err)
	}

	// Reopen without the identity key: the stream continues.
	cfg := chainCfg(t)
	cfg.Identity = nil
	b := newSim(t, dir, cfg, "reopen-2")
	info := b.chain.Info()
	if info.StreamID != stream || info.NextSeq != 2 || info.Started {
		t.Fatalf("reopened info %+v", info)
	}
	mustAccept(t, c, b.seal(0, 0), Accepted)
	mustAccept(t, c, b.seal(3, 3), Accepted)

	fi, err := os.Stat(filepath.Join(dir, ChainStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v", fi.Mode().Perm())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v", di.Mode().Perm())
	}
}

// TestChainDestroysUsedKeys checks the state file never holds a key after it signed.
func TestChainDestroysUsedKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a := newSim(t, dir, chainCfg(t), "destroy")
	var used [][]byte
	for i := range 4 {
		cur, _ := a.stolen()
		if cur != nil {
			used = append(used, cur.Seed())
		}
		a.seal(i, 0)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ChainStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(used) != 3 {
		t.Fatalf("used %d keys", len(used))
	}
	for i, seed := range used {
		// The seeds are stored as base64 in the slot JSON; look for them in every form.
		for _, form := range [][]byte{seed, []byte(base64.StdEncoding.EncodeToString(seed))} {
			if bytes.Contains(raw, form) {
				t.Fatalf("used key %d is still in the state file", i)
			}
		}
	}
	f := readChainFile(t, dir)
	if len(f.Key) == 0 || !bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(f.Key))) {
		t.Fatal("test is blind: the current key is not found in the raw file")
	}
}

func TestChainStoreFailureReusesSeq(t *testing.T) {
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "storefail")
	mustAccept(t, c, a.seal(1, 0), Accepted)
	boom := errors.New("spool full")
	_, err := a.chain.Seal(context.Background(), events(1, 1), metaFor(1), func(context.Context, Batch) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if a.chain.Info().NextSeq != 1 {
		t.Fatal("state advanced although store failed")
	}
	var stored Batch
	b, err := a.chain.Seal(context.Background(), events(2, 1), metaFor(2), func(_ context.Context, b Batch) error { stored = b; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Envelope, b.Envelope) {
		t.Fatal("stored batch differs from returned one")
	}
	if h := decodeBatchHeader(t, b); h.Seq != 1 {
		t.Fatalf("seq %d, want 1", h.Seq)
	}
	mustAccept(t, c, b, Accepted)
}

// copyDir snapshots a state dir, as the disk would look after a crash at that moment.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestChainCrashAfterStore: the process dies after the spool stored seq 1 but before the
// chain state was written. OpenChain finishes the step from LastStored, so seq 2 follows
// seq 1 instead of re-using seq 1 (a fork).
func TestChainCrashAfterStore(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	crash := filepath.Join(root, "crash")
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, dir, chainCfg(t), "crash")
	mustAccept(t, c, a.seal(1, 0), Accepted)
	var spool []Batch
	b1, err := a.chain.Seal(context.Background(), events(1, 1), metaFor(1), func(_ context.Context, b Batch) error {
		spool = append(spool, b)
		copyDir(t, dir, crash) // crash image: stored, state not yet advanced
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustAccept(t, c, b1, Accepted)
	noRecover := filepath.Join(root, "crash-no-recover")
	copyDir(t, crash, noRecover)

	cfg := chainCfg(t)
	cfg.LastStored = func(context.Context) ([]byte, error) { return spool[len(spool)-1].Envelope, nil }
	r := newSim(t, crash, cfg, "crash-restart")
	if info := r.chain.Info(); info.NextSeq != 2 || info.Started {
		t.Fatalf("after recovery %+v", info)
	}
	mustAccept(t, c, r.seal(1, 2), Accepted)

	// Without LastStored the same crash image re-uses seq 1 with the same key and other
	// content: central rightly calls that a fork. This is why LastStored exists.
	n := newSim(t, noRecover, chainCfg(t), "crash-no-recover")
	mustAccept(t, c, n.seal(1, 9), Fork)
}

// TestChainCrashDuringStore: the process dies while storing seq 1 (nothing durable).
// The restarted chain seals seq 1 again with the same key; central never saw the lost one.
func TestChainCrashDuringStore(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	crash := filepath.Join(root, "crash")
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, dir, chainCfg(t), "crash2")
	b0 := a.seal(1, 0)
	mustAccept(t, c, b0, Accepted)
	_, _ = a.chain.Seal(context.Background(), events(1, 1), metaFor(1), func(_ context.Context, b Batch) error {
		copyDir(t, dir, crash)
		return errors.New("killed")
	})
	cfg := chainCfg(t)
	cfg.LastStored = func(context.Context) ([]byte, error) { return b0.Envelope, nil }
	r := newSim(t, crash, cfg, "crash2-restart")
	if info := r.chain.Info(); info.NextSeq != 1 {
		t.Fatalf("after restart %+v", info)
	}
	mustAccept(t, c, r.seal(2, 1), Accepted)
}

// TestChainTornStateWrite: crashes inside the state write. The file holds two slots; the
// newest valid one wins, a torn one fails its checksum.
func TestChainTornStateWrite(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	path := filepath.Join(dir, ChainStateFile)
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, dir, chainCfg(t), "torn")
	mustAccept(t, c, a.seal(1, 0), Accepted)
	imgA, _ := os.ReadFile(path) // state: next seq 1
	b1 := a.seal(1, 1)
	mustAccept(t, c, b1, Accepted)
	imgB, _ := os.ReadFile(path) // state: next seq 2
	a.chain.Close()
	if len(imgA) != 2*slotSize || len(imgB) != 2*slotSize {
		t.Fatalf("state file sizes %d %d", len(imgA), len(imgB))
	}
	// B wrote its slot where A's predecessor was, and wiped A's slot.
	newIdx := 0
	if bytes.Equal(imgB[:slotSize], make([]byte, slotSize)) {
		newIdx = 1
	}
	oldIdx := 1 - newIdx
	combine := func(newSlot []byte) []byte {
		out := make([]byte, 2*slotSize)
		copy(out[newIdx*slotSize:], newSlot)
		copy(out[oldIdx*slotSize:], imgA[oldIdx*slotSize:(oldIdx+1)*slotSize])
		return out
	}

	// Crash after the new slot was synced, before the old one was wiped: both valid.
	d1 := filepath.Join(root, "both")
	os.MkdirAll(d1, 0o700)
	os.WriteFile(filepath.Join(d1, ChainStateFile), combine(imgB[newIdx*slotSize:(newIdx+1)*slotSize]), 0o600)
	r1 := newSim(t, d1, chainCfg(t), "torn-1")
	if info := r1.chain.Info(); info.NextSeq != 2 || info.Started {
		t.Fatalf("both slots valid: %+v", info)
	}

	// Crash while writing the new slot: it is torn, the old one is whole. With LastStored
	// (seq 1 is in the spool) the chain completes the step.
	torn := bytes.Clone(imgB[newIdx*slotSize : (newIdx+1)*slotSize])
	torn[100] ^= 0xff
	d2 := filepath.Join(root, "torn")
	os.MkdirAll(d2, 0o700)
	os.WriteFile(filepath.Join(d2, ChainStateFile), combine(torn), 0o600)
	cfg := chainCfg(t)
	cfg.LastStored = func(context.Context) ([]byte, error) { return b1.Envelope, nil }
	r2 := newSim(t, d2, cfg, "torn-2")
	if info := r2.chain.Info(); info.NextSeq != 2 || info.Started {
		t.Fatalf("torn new slot: %+v", info)
	}
	mustAccept(t, c, r2.seal(1, 2), Accepted)

	// Both slots destroyed: a new stream (reset), visible to central.
	d3 := filepath.Join(root, "none")
	os.MkdirAll(d3, 0o700)
	os.WriteFile(filepath.Join(d3, ChainStateFile), make([]byte, 2*slotSize), 0o600)
	r3 := newSim(t, d3, chainCfg(t), "torn-3")
	if info := r3.chain.Info(); !info.Started || info.NextSeq != 0 {
		t.Fatalf("no valid slot: %+v", info)
	}
	if res := mustAccept(t, c, r3.seal(0, 0), Accepted); !res.StreamStart {
		t.Fatal("reset not a stream start")
	}
}

// TestChainLostStateResets: unusable state starts a new stream, visible to central.
func TestChainLostStateResets(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "state")
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, dir, chainCfg(t), "lost")
	mustAccept(t, c, a.seal(1, 0), Accepted)
	old := a.chain.Info().StreamID
	a.chain.Close()
	path := filepath.Join(dir, ChainStateFile)
	if err := os.WriteFile(path, []byte(`{"v":1,"garbage`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newSim(t, dir, chainCfg(t), "lost-2")
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v after reset", fi.Mode().Perm())
	}
	info := r.chain.Info()
	if !info.Started || info.StreamID == old || info.NextSeq != 0 {
		t.Fatalf("after lost state %+v", info)
	}
	res := mustAccept(t, c, r.seal(1, 1), Accepted)
	if !res.StreamStart {
		t.Fatal("StreamStart not set")
	}

	// Another agent id in the config: new stream naming the old one.
	cfg := chainCfg(t)
	r.chain.Close()
	cfg.Audience = "central.example/tenant-z"
	z := newSim(t, dir, cfg, "lost-3")
	if zi := z.chain.Info(); !zi.Started || zi.PrevStream != info.StreamID {
		t.Fatalf("audience change %+v", zi)
	}
	if h := decodeBatchHeader(t, z.seal(0, 0)); h.PrevStream != info.StreamID || h.Seq != 0 {
		t.Fatalf("reset header %+v", h)
	}

	// No identity and no state: cannot start.
	cfg.Identity = nil
	if _, err := OpenChain(context.Background(), ChainConfig{Dir: filepath.Join(root, "empty"), Audience: "a", AgentID: "b"}); err == nil {
		t.Fatal("started a stream without an identity key")
	}
}

func TestChainConcurrentSeal(t *testing.T) {
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "conc")
	var mu sync.Mutex
	var spool []Batch
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.chain.Seal(context.Background(), events(i%3, i), metaFor(i%3), func(_ context.Context, b Batch) error {
				mu.Lock()
				spool = append(spool, b)
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, b := range spool { // spool order = seal order
		mustAccept(t, c, b, Accepted)
	}
}

func TestChainSealRejectsBadInput(t *testing.T) {
	a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "bad")
	ctx := context.Background()
	if _, err := a.chain.Seal(ctx, []byte(`{"a":1}`), metaFor(1), nil); err == nil {
		t.Fatal("accepted a body without trailing newline")
	}
	if _, err := a.chain.Seal(ctx, events(1, 0), Meta{}, nil); err == nil {
		t.Fatal("accepted events without times")
	}
	if a.chain.Info().NextSeq != 0 {
		t.Fatal("state advanced on bad input")
	}
}

// TestChainLogsNoKeys runs a chain through start, seals, crash recovery and reset with a
// text logger and checks that no key seed appears in the log.
func TestChainLogsNoKeys(t *testing.T) {
	var logBuf bytes.Buffer
	var seeds [][]byte
	root := t.TempDir()
	cfg := chainCfg(t)
	cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := newSim(t, filepath.Join(root, "s"), cfg, "logs")
	var last Batch
	for i := range 3 {
		cur, next := a.stolen()
		if cur != nil {
			seeds = append(seeds, cur.Seed())
		}
		seeds = append(seeds, next.Seed())
		last = a.seal(i, 0)
	}
	copyDir(t, a.dir, filepath.Join(root, "c"))
	if err := a.chain.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg.LastStored = func(context.Context) ([]byte, error) { return last.Envelope, nil }
	newSim(t, filepath.Join(root, "c"), cfg, "logs-2")
	if logBuf.Len() == 0 {
		t.Fatal("nothing logged: test is blind")
	}
	for _, s := range seeds {
		for _, form := range []string{base64.StdEncoding.EncodeToString(s), string(s), fmt.Sprintf("%x", s)} {
			if strings.Contains(logBuf.String(), form) {
				t.Fatalf("a key seed appears in the log:\n%s", logBuf.String())
			}
		}
	}
}

// TestChainStateWriteFailure: the spool stored seq 1 but the state write failed. The
// chain must refuse to seal again (that would re-use seq 1: a fork) until it is reopened,
// and the reopened chain continues after seq 1.
func TestChainStateWriteFailure(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "s")
	c := newCentral(t, vecAudience, vecAgent, testPubPEM(t, "identity"), Limits{})
	a := newSim(t, dir, chainCfg(t), "wfail")
	mustAccept(t, c, a.seal(1, 0), Accepted)
	var spool []Batch
	store := func(_ context.Context, b Batch) error { spool = append(spool, b); return nil }
	a.chain.sf.f.Close() // the disk goes away under the state file
	b1, err := a.chain.Seal(ctx, events(1, 1), metaFor(1), store)
	if err == nil || len(spool) != 1 || !bytes.Equal(b1.Envelope, spool[0].Envelope) {
		t.Fatalf("seal with failing state write: err %v, %d stored", err, len(spool))
	}
	if _, err := a.chain.Seal(ctx, nil, Meta{}, store); err == nil || len(spool) != 1 {
		t.Fatal("sealed again after the state write failed")
	}
	mustAccept(t, c, spool[0], Accepted)
	cfg := chainCfg(t)
	cfg.LastStored = func(context.Context) ([]byte, error) { return spool[len(spool)-1].Envelope, nil }
	r := newSim(t, dir, cfg, "wfail-2")
	mustAccept(t, c, r.seal(0, 0), Accepted)
}
