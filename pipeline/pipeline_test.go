package pipeline

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/testenv"
	"github.com/provtrail/provtrail/pipeline/correlate"
	"github.com/provtrail/provtrail/pipeline/positions"
	"github.com/provtrail/provtrail/pipeline/spool"
	"github.com/provtrail/provtrail/signer"
)

type rig struct {
	dir   string
	sp    *spool.Spool
	ps    *positions.Store
	chain *signer.Chain
	p     *Pipeline
	fw    *Forwarder
	recv  *testenv.Receiver
	id    *signer.PrivateKey

	cancel context.CancelFunc
	wg     sync.WaitGroup
	runErr chan error
}

type rigOptions struct {
	heartbeat      time.Duration
	correlate      *correlate.Config
	spoolMax       int64
	batchMaxEvents int
	batchMaxWait   time.Duration
	recv           *testenv.Receiver
}

func testIdentity(t testing.TB) *signer.PrivateKey {
	t.Helper()
	k, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := signer.NewPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func startRig(t testing.TB, dir string, id *signer.PrivateKey, o rigOptions) *rig {
	t.Helper()
	r := &rig{dir: dir, id: id, recv: o.recv, runErr: make(chan error, 2)}
	if r.recv == nil {
		r.recv = testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "test-central",
			Agents: map[string]crypto.PublicKey{"host-1": id.Public()}, TLS: true})
	}
	var err error
	r.sp, err = spool.Open(spool.Config{Dir: filepath.Join(dir, "spool"), MaxBytes: o.spoolMax, SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	r.ps, err = positions.Open(filepath.Join(dir, "positions.json"))
	if err != nil {
		t.Fatal(err)
	}
	through, err := Recover(r.sp, r.ps, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.chain, err = signer.OpenChain(ctx, signer.ChainConfig{
		Dir: filepath.Join(dir, "chain"), Audience: "test-central", AgentID: "host-1", Identity: id,
		Encoding: signer.EncodingZstd,
		LastStored: func(context.Context) ([]byte, error) {
			env, err := LastStored(r.sp)
			if env != nil || err != nil {
				return env, err
			}
			return LastAckedEnvelope(dir)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.p, err = New(Config{Spool: r.sp, Positions: r.ps, Chain: r.chain,
		BatchMaxEvents: o.batchMaxEvents, BatchMaxWait: o.batchMaxWait, Correlate: o.correlate,
		Heartbeat: o.heartbeat}, through)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewHTTPClient(TLSFiles{CAFile: r.recv.CAFile}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r.fw, err = NewForwarder(ForwarderConfig{URL: r.recv.URL, Client: client, Spool: r.sp, Commit: r.p.CommitPositions,
		StateDir: dir, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, AckInterval: 20 * time.Millisecond,
		Reseal: r.p.Reseal})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.runErr <- r.p.Run(runCtx) }()
	go func() { defer r.wg.Done(); r.runErr <- r.fw.Run(runCtx) }()
	t.Cleanup(r.stop)
	return r
}

// stop drains the pipeline and stops the forwarder.
func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.p.Close()
	select {
	case <-r.p.Done():
	case <-time.After(5 * time.Second):
	}
	r.cancel()
	r.wg.Wait()
	r.cancel = nil
	r.chain.Close()
	r.sp.Close()
}

func testEvent(i int) event.Event {
	e := event.Event{
		ID:           event.NewID("test", "host-1", strconv.Itoa(i)),
		Time:         time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		ObservedTime: time.Now(),
		Action:       event.UserCreate,
		Actor:        event.Actor{Name: "root"},
		Target:       event.Target{User: &event.User{Name: fmt.Sprintf("user%d", i)}},
		Source:       event.Source{Collector: "test", Instance: "gen"},
		Raw:          fmt.Sprintf("useradd[1]: new user: name=user%d", i),
	}
	e.Complete()
	return e
}

func emitRange(t *testing.T, em collectors.Emitter, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := em.Emit(context.Background(), collectors.Record{Event: testEvent(i), Position: []byte(strconv.Itoa(i + 1))}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// received returns the test event numbers central accepted, in order.
func received(t *testing.T, recv *testenv.Receiver) []int {
	t.Helper()
	var out []int
	for _, b := range recv.Batches() {
		for _, line := range b.Events {
			var e event.Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatal(err)
			}
			var n int
			fmt.Sscanf(e.Target.User.Name, "user%d", &n)
			out = append(out, n)
		}
	}
	return out
}

func checkExactlyOnceInOrder(t *testing.T, got []int, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("central got %d events, want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("event %d is user%d: order or exactly-once broken", i, v)
		}
	}
}

func TestEndToEnd(t *testing.T) {
	id := testIdentity(t)
	dir := t.TempDir()
	r := startRig(t, dir, id, rigOptions{batchMaxEvents: 7, batchMaxWait: 20 * time.Millisecond})
	em := r.p.Emitter("test/gen")
	emitRange(t, em, 0, 100)
	waitFor(t, "all events delivered", 10*time.Second, func() bool { return r.recv.EventCount() == 100 })
	checkExactlyOnceInOrder(t, received(t, r.recv), 100)
	waitFor(t, "spool acknowledged", 5*time.Second, func() bool { return r.sp.Stats().Pending == 0 })
	r.stop()
	// Positions were committed for the last record.
	ps, err := positions.Open(filepath.Join(dir, "positions.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(ps.Get("test/gen")); got != "100" {
		t.Fatalf("committed position = %q, want 100", got)
	}
	// Receipts were kept.
	rc, err := os.ReadFile(filepath.Join(dir, "receipts", "receipts.ndjson"))
	if err != nil || len(rc) == 0 {
		t.Fatalf("receipts: %v (%d bytes)", err, len(rc))
	}
	// Restart: the chain continues the same stream.
	r2 := startRig(t, dir, id, rigOptions{batchMaxEvents: 7, batchMaxWait: 20 * time.Millisecond, recv: r.recv})
	emitRange(t, r2.p.Emitter("test/gen"), 100, 110)
	waitFor(t, "events after restart", 10*time.Second, func() bool { return r.recv.EventCount() == 110 })
	checkExactlyOnceInOrder(t, received(t, r.recv), 110)
	streams := map[string]bool{}
	for _, b := range r.recv.Batches() {
		streams[b.Stream] = true
	}
	if len(streams) != 1 {
		t.Fatalf("chain broke into %d streams", len(streams))
	}
}

func TestReceiverDownFullSpoolPauses(t *testing.T) {
	id := testIdentity(t)
	dir := t.TempDir()
	recv := testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "test-central",
		Agents: map[string]crypto.PublicKey{"host-1": id.Public()}, TLS: true})
	recv.SetDown(true)
	r := startRig(t, dir, id, rigOptions{spoolMax: 64 << 10, batchMaxEvents: 5, batchMaxWait: 5 * time.Millisecond, recv: recv})
	em := r.p.Emitter("test/gen")
	var emitted atomic.Int64
	done := make(chan struct{})
	const n = 1000
	go func() {
		defer close(done)
		for i := range n {
			if err := em.Emit(context.Background(), collectors.Record{Event: testEvent(i), Position: []byte(strconv.Itoa(i + 1))}); err != nil {
				return
			}
			emitted.Store(int64(i + 1))
		}
	}()
	waitFor(t, "spool full", 20*time.Second, func() bool { return r.sp.Stats().Full })
	// Collection is paused: once the in-memory hand-over (the batch being
	// built and a bounded channel) is full, the emitter stops advancing.
	time.Sleep(300 * time.Millisecond)
	before := emitted.Load()
	time.Sleep(300 * time.Millisecond)
	if after := emitted.Load(); after != before || after == n {
		t.Fatalf("emitter advanced from %d to %d while the spool was full", before, after)
	}
	if recv.EventCount() != 0 {
		t.Fatal("receiver accepted while down")
	}
	recv.SetDown(false)
	<-done
	waitFor(t, "everything delivered", 30*time.Second, func() bool { return recv.EventCount() == n })
	checkExactlyOnceInOrder(t, received(t, recv), n)
	if v := recv.Verdicts(); v["accepted"] == 0 {
		t.Fatalf("verdicts: %v", v)
	}
}

func TestRejectedBatchSetAside(t *testing.T) {
	id := testIdentity(t)
	dir := t.TempDir()
	recv := testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "test-central",
		Agents: map[string]crypto.PublicKey{"host-1": id.Public()}, TLS: true})
	recv.RejectSeq(1, "bad_signature")
	r := startRig(t, dir, id, rigOptions{batchMaxEvents: 1, batchMaxWait: 5 * time.Millisecond, recv: recv})
	emitRange(t, r.p.Emitter("test/gen"), 0, 3)
	waitFor(t, "all batches answered", 10*time.Second, func() bool { return r.sp.Stats().Pending == 0 && r.sp.Stats().Last >= 3 })
	kept, _ := filepath.Glob(filepath.Join(dir, "rejected", "*-seq-00000000000000000001.batch"))
	if len(kept) != 1 {
		entries, _ := os.ReadDir(filepath.Join(dir, "rejected"))
		t.Fatalf("rejected batch not kept: %v", entries)
	}
	b, err := os.ReadFile(kept[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signer.UnmarshalBatch(b, signer.Limits{}); err != nil {
		t.Fatalf("kept batch is not the wire bytes: %v", err)
	}
	if v := recv.Verdicts(); v["bad_signature"] != 1 || v["gap"] == 0 {
		t.Fatalf("verdicts: %v", v)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"3":                             3 * time.Second,
		"-1":                            0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:10 GMT": 10 * time.Second,
		"Wed, 31 Dec 2025 00:00:10 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestEmitAfterClose(t *testing.T) {
	id := testIdentity(t)
	r := startRig(t, t.TempDir(), id, rigOptions{})
	r.p.Close()
	<-r.p.Done()
	err := r.p.Emitter("x/y").Emit(context.Background(), collectors.Record{Event: testEvent(1)})
	if !errors.Is(err, ErrStopped) {
		t.Fatalf("Emit after Close = %v", err)
	}
}

// BenchmarkEmitToAck measures the pipeline from Emit to central's
// acknowledgement (redact, JSON, batch of 500, zstd, sign, spool with
// fsync, HTTPS to a verifying receiver in this process).
func BenchmarkEmitToAck(b *testing.B) {
	id := testIdentity(b)
	dir := b.TempDir()
	recv := testenv.StartReceiver(b, testenv.ReceiverOptions{Audience: "test-central", DiscardEvents: true,
		Agents: map[string]crypto.PublicKey{"host-1": id.Public()}, TLS: true})
	r := startRig(b, dir, id, rigOptions{batchMaxEvents: 500, batchMaxWait: time.Second, recv: recv})
	em := r.p.Emitter("test/gen")
	evs := make([]event.Event, 1000)
	for i := range evs {
		evs[i] = testEvent(i)
		evs[i].Raw = fmt.Sprintf("2026-11-25T00:00:00.000000+00:00 bench-host useradd[1000]: new user: name=user%d, UID=%d, GID=%d, home=/home/user%d, shell=/bin/bash, from=/dev/pts/0", i, i, i, i)
	}
	i := 0
	for b.Loop() {
		if err := em.Emit(context.Background(), collectors.Record{Event: evs[i%len(evs)], Position: []byte("p")}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	r.p.Flush(context.Background())
	for recv.EventCount() < i {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
}

// TestCorrelatedCollectors: the same useradd reported by authlog and
// auditd reaches central once, with both records as evidence, and both
// collectors' positions are committed; an uncorrelated collector's event
// passes straight through.
func TestCorrelatedCollectors(t *testing.T) {
	id := testIdentity(t)
	dir := t.TempDir()
	r := startRig(t, dir, id, rigOptions{batchMaxEvents: 100, batchMaxWait: 10 * time.Millisecond,
		correlate: &correlate.Config{Collectors: []string{"authlog", "auditd"}, Hold: 100 * time.Millisecond}})
	tm := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	mk := func(collector, instance, raw string) event.Event {
		e := event.Event{ID: event.NewID(collector, raw), Time: tm, ObservedTime: tm, Action: event.UserCreate,
			Outcome: event.OutcomeSuccess, Target: event.Target{User: &event.User{Name: "alice"}},
			Origin: event.Origin{System: "linux", Host: "vm", PID: 4242, Program: "useradd"},
			Source: event.Source{Collector: collector, Instance: instance}, Raw: raw}
		e.Complete()
		return e
	}
	ctx := context.Background()
	if err := r.p.Emitter("authlog/system").Emit(ctx, collectors.Record{Event: mk("authlog", "system", "useradd[4242]: new user: name=alice"), Position: []byte("L1")}); err != nil {
		t.Fatal(err)
	}
	if err := r.p.Emitter("auditd/local").Emit(ctx, collectors.Record{Event: mk("auditd", "local", "type=ADD_USER pid=4242 acct=alice"), Position: []byte("A1")}); err != nil {
		t.Fatal(err)
	}
	if err := r.p.Emitter("okta/org").Emit(ctx, collectors.Record{Event: testEvent(7), Position: []byte("O1")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two events at central", 10*time.Second, func() bool { return r.recv.EventCount() == 2 })
	time.Sleep(200 * time.Millisecond)
	var merged *event.Event
	for _, b := range r.recv.Batches() {
		for _, line := range b.Events {
			var e event.Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatal(err)
			}
			if e.Target.User.Name == "alice" {
				merged = &e
			}
		}
	}
	if r.recv.EventCount() != 2 || merged == nil {
		t.Fatalf("central has %d events", r.recv.EventCount())
	}
	if !strings.Contains(merged.Raw, "useradd[4242]") || !strings.Contains(merged.Raw, "ADD_USER") {
		t.Fatalf("merged event lacks evidence: %q", merged.Raw)
	}
	r.stop()
	ps, err := positions.Open(filepath.Join(dir, "positions.json"))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"authlog/system": "L1", "auditd/local": "A1", "okta/org": "O1"} {
		if got := string(ps.Get(k)); got != want {
			t.Errorf("position of %s = %q, want %q", k, got, want)
		}
	}
}

// scripted answers POSTed batches from a list of (status, Retry-After,
// body) and records when each request came.
type scripted struct {
	mu      sync.Mutex
	answers []scriptedAnswer
	times   []time.Time
	protos  []string
}

type scriptedAnswer struct {
	status     int
	retryAfter string
	body       string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.times = append(s.times, time.Now())
	s.protos = append(s.protos, r.Proto)
	a := scriptedAnswer{status: 200, body: `{"verdict":"accepted","log_index":1}`}
	if len(s.answers) > 0 {
		a, s.answers = s.answers[0], s.answers[1:]
	}
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

// TestForwarderAnswers drives the forwarder against scripted answers:
// Retry-After is honoured, server errors back off, a refusal that is not
// about the batch (wrong audience) keeps it spooled and retries, a batch
// central rejects as forged is set aside, and HTTP/2 is used over TLS.
func TestForwarderAnswers(t *testing.T) {
	cases := []struct {
		name     string
		answers  []scriptedAnswer
		minGap   time.Duration // between the first two attempts
		setAside bool
		attempts int
	}{
		{"retry-after seconds", []scriptedAnswer{{429, "1", `{"reason":"slow down"}`}}, time.Second, false, 2},
		{"503 without retry-after backs off", []scriptedAnswer{{503, "", `{"retry":true}`}}, 10 * time.Millisecond, false, 2},
		{"wrong audience is retried, not set aside", []scriptedAnswer{{421, "", `{"verdict":"wrong_audience","reason":"aud"}`}}, 10 * time.Millisecond, false, 2},
		{"not enrolled is retried, not set aside", []scriptedAnswer{{403, "", `{"verdict":"unknown_key","reason":"agent \"host-1\" is not enrolled"}`}}, 10 * time.Millisecond, false, 2},
		{"forged batch is set aside", []scriptedAnswer{{403, "", `{"verdict":"bad_signature","reason":"signature does not verify"}`}}, 0, true, 1},
		{"malformed batch is set aside", []scriptedAnswer{{400, "", `{"verdict":"malformed","reason":"bad"}`}}, 0, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := &scripted{answers: tc.answers}
			ts := httptest.NewUnstartedServer(srv)
			ts.EnableHTTP2 = true
			ts.StartTLS()
			defer ts.Close()
			dir := t.TempDir()
			id := testIdentity(t)
			sp, err := spool.Open(spool.Config{Dir: filepath.Join(dir, "spool")})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			chain, err := signer.OpenChain(context.Background(), signer.ChainConfig{Dir: filepath.Join(dir, "chain"),
				Audience: "a", AgentID: "host-1", Identity: id})
			if err != nil {
				t.Fatal(err)
			}
			defer chain.Close()
			_, err = chain.Seal(context.Background(), nil, signer.Meta{}, func(_ context.Context, b signer.Batch) error {
				wire, err := signer.MarshalBatch(b)
				if err != nil {
					return err
				}
				_, err = sp.Append(encodeEntry(wire, nil))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			fw, err := NewForwarder(ForwarderConfig{URL: ts.URL, Client: ts.Client(), Spool: sp, StateDir: dir,
				Commit: func() (uint64, error) { return sp.Stats().Last, nil }, MinBackoff: 20 * time.Millisecond,
				MaxBackoff: 100 * time.Millisecond, AckInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- fw.Run(ctx) }()
			waitFor(t, "batch acknowledged", 10*time.Second, func() bool { return sp.Stats().Pending == 0 })
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.times) != tc.attempts {
				t.Fatalf("%d attempts, want %d", len(srv.times), tc.attempts)
			}
			if tc.attempts > 1 {
				if gap := srv.times[1].Sub(srv.times[0]); gap < tc.minGap {
					t.Fatalf("retried after %v, want at least %v", gap, tc.minGap)
				}
			}
			if srv.protos[0] != "HTTP/2.0" {
				t.Errorf("protocol %s, want HTTP/2.0", srv.protos[0])
			}
			kept, _ := filepath.Glob(filepath.Join(dir, "rejected", "*.batch"))
			if (len(kept) > 0) != tc.setAside {
				t.Fatalf("set aside: %v, want %v", kept, tc.setAside)
			}
			last, err := LastAckedEnvelope(dir)
			if err != nil || last == nil {
				t.Fatalf("last acknowledged envelope not kept: %v", err)
			}
		})
	}
}

// TestHeartbeats: an idle agent seals empty batches so central can tell
// silence from loss; a busy one does not need them.
func TestHeartbeats(t *testing.T) {
	id := testIdentity(t)
	r := startRig(t, t.TempDir(), id, rigOptions{heartbeat: 100 * time.Millisecond, batchMaxWait: 5 * time.Millisecond})
	waitFor(t, "two heartbeats", 10*time.Second, func() bool {
		n := 0
		for _, b := range r.recv.Batches() {
			if b.Heartbeat {
				n++
			}
		}
		return n >= 2
	})
	emitRange(t, r.p.Emitter("test/gen"), 0, 3)
	waitFor(t, "events", 5*time.Second, func() bool { return r.recv.EventCount() == 3 })
	bs := r.recv.Batches()
	for i, b := range bs {
		if b.Seq != uint64(i) {
			t.Fatalf("batch %d has seq %d", i, b.Seq)
		}
	}
}

// TestClientCertificate: NewHTTPClient presents the configured client
// certificate to a central that requires one, and trusts only ca_file.
func TestClientCertificate(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, usage x509.ExtKeyUsage, ip bool) (certPath, keyPath string, cert tls.Certificate) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(k)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
		certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		os.WriteFile(certPath, certPEM, 0o600)
		os.WriteFile(keyPath, keyPEM, 0o600)
		cert, err = tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return certPath, keyPath, cert
	}
	_, _, serverCert := issue("central", x509.ExtKeyUsageServerAuth, true)
	clientCrt, clientKey, _ := issue("agent", x509.ExtKeyUsageClientAuth, false)
	caPath := filepath.Join(dir, "ca.pem")
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	var peer string
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer = r.TLS.PeerCertificates[0].Subject.CommonName
		io.WriteString(w, `{"verdict":"accepted"}`)
	}))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()

	c, err := NewHTTPClient(TLSFiles{CAFile: caPath, CertFile: clientCrt, KeyFile: clientKey}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if peer != "agent" || resp.ProtoMajor != 2 {
		t.Fatalf("peer %q, protocol %s", peer, resp.Proto)
	}
	// Without the client certificate central refuses the handshake.
	c2, err := NewHTTPClient(TLSFiles{CAFile: caPath}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c2.Get(ts.URL); err == nil {
		resp.Body.Close()
		t.Fatal("request without a client certificate succeeded")
	}
	// A CA file that does not hold central's issuer is not trusted.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &otherKey.PublicKey, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.pem")
	os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: otherDER}), 0o600)
	c3, _ := NewHTTPClient(TLSFiles{CAFile: other, CertFile: clientCrt, KeyFile: clientKey}, 5*time.Second)
	if resp, err := c3.Get(ts.URL); err == nil {
		resp.Body.Close()
		t.Fatal("server certificate accepted without its CA")
	}
	if _, err := NewHTTPClient(TLSFiles{CAFile: filepath.Join(dir, "missing.pem")}, time.Second); err == nil {
		t.Fatal("missing ca_file accepted")
	}
}

// TestEmitCopiesAreRecycledCleanly emits events whose change lists differ
// in length, reusing one record slice as collectors do, and checks that
// central gets each event exactly as emitted: no change list of an earlier
// event shows through a recycled copy, and redaction of one copy does not
// touch the collector's records.
func TestEmitCopiesAreRecycledCleanly(t *testing.T) {
	id := testIdentity(t)
	r := startRig(t, t.TempDir(), id, rigOptions{batchMaxEvents: 5, batchMaxWait: 20 * time.Millisecond})
	em := r.p.Emitter("test/gen")
	const n = 300
	want := make([]event.Event, n)
	recs := make([]collectors.Record, 3)
	for i := 0; i < n; {
		k := min(1+i%3, n-i)
		for j := range k {
			e := testEvent(i + j)
			for c := range (i + j) % 5 {
				e.Changes = append(e.Changes, event.Change{Field: fmt.Sprintf("f%d", c), New: fmt.Sprintf("v%d-%d", i+j, c)})
			}
			if (i+j)%7 == 0 {
				e.Changes = append(e.Changes, event.Change{Field: "password", New: "hunter2"})
			}
			want[i+j] = e
			recs[j] = collectors.Record{Event: e, Position: []byte(strconv.Itoa(i + j + 1))}
		}
		if err := em.Emit(context.Background(), recs[:k]...); err != nil {
			t.Fatal(err)
		}
		for j := range k {
			if c := recs[j].Event.Changes; len(c) > 0 && c[len(c)-1].New == event.Redacted {
				t.Fatalf("event %d: Emit redacted the collector's own record", i+j)
			}
		}
		i += k
	}
	waitFor(t, "all events delivered", 10*time.Second, func() bool { return r.recv.EventCount() == n })
	i := 0
	for _, b := range r.recv.Batches() {
		for _, line := range b.Events {
			var got event.Event
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatal(err)
			}
			w := want[i]
			if got.ID != w.ID {
				t.Fatalf("event %d: id %s, want %s", i, got.ID, w.ID)
			}
			if len(got.Changes) != len(w.Changes) {
				t.Fatalf("event %d: %d changes %v, want %d", i, len(got.Changes), got.Changes, len(w.Changes))
			}
			for c := range w.Changes {
				wc := w.Changes[c]
				if wc.Field == "password" {
					wc.New = event.Redacted
				}
				if got.Changes[c] != wc {
					t.Fatalf("event %d change %d: %+v, want %+v", i, c, got.Changes[c], wc)
				}
			}
			i++
		}
	}
	if i != n {
		t.Fatalf("central got %d events, want %d", i, n)
	}
}

// deliverThenRestore has an agent on dir deliver n events and stop, and
// returns the stream they went in and a receiver standing for central
// restored from a backup taken before them: it never saw the stream. The
// receiver is down until the test brings it up.
func deliverThenRestore(t *testing.T, dir string, id *signer.PrivateKey, opts rigOptions, n int) (string, *testenv.Receiver) {
	t.Helper()
	r := startRig(t, dir, id, opts)
	emitRange(t, r.p.Emitter("test/gen"), 0, n)
	waitFor(t, "first events delivered", 10*time.Second, func() bool { return r.recv.EventCount() == n })
	waitFor(t, "spool acknowledged", 5*time.Second, func() bool { return r.sp.Stats().Pending == 0 })
	stream := r.recv.Batches()[0].Stream
	r.stop()
	restored := testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "test-central",
		Agents: map[string]crypto.PublicKey{"host-1": id.Public()}, TLS: true})
	restored.SetDown(true)
	return stream, restored
}

// TestGapResealsIntoNewStream: central loses batches it acknowledged (it
// is restored from a backup: here, a receiver that never saw the stream).
// The next batch is a gap central cannot store, and neither could it any
// later one of that stream. The agent re-signs everything it still holds
// into a new stream, and central gets every event after the loss exactly
// once, in order, in one new stream that names the old one.
func TestGapResealsIntoNewStream(t *testing.T) {
	id := testIdentity(t)
	dir := t.TempDir()
	opts := rigOptions{batchMaxEvents: 7, batchMaxWait: 20 * time.Millisecond}
	oldStream, restored := deliverThenRestore(t, dir, id, opts, 30)
	// restored is down: the batches wait until several are spooled, so
	// that more than the first is re-signed.
	opts.recv = restored
	r2 := startRig(t, dir, id, opts)
	emitRange(t, r2.p.Emitter("test/gen"), 30, 60)
	waitFor(t, "batches spooled", 10*time.Second, func() bool { return r2.sp.Stats().Pending >= 4 })
	restored.SetDown(false)
	waitFor(t, "events after the loss delivered", 10*time.Second, func() bool { return restored.EventCount() == 30 })
	waitFor(t, "spool acknowledged", 5*time.Second, func() bool { return r2.sp.Stats().Pending == 0 })

	got := received(t, restored)
	for i, v := range got {
		if v != 30+i {
			t.Fatalf("event %d is user%d, want user%d: order or exactly-once broken", i, v, 30+i)
		}
	}
	batches := restored.Batches()
	for i, b := range batches {
		if b.Stream == oldStream || b.Stream != batches[0].Stream || b.Seq != uint64(i) {
			t.Fatalf("batch %d: stream %s seq %d; want one new stream from seq 0 (old %s)", i, b.Stream, b.Seq, oldStream)
		}
	}
	if batches[0].PrevStream != oldStream {
		t.Fatalf("new stream's prev_stream = %q, want %q", batches[0].PrevStream, oldStream)
	}
	if v := restored.Verdicts(); v["gap"] != 1 {
		t.Fatalf("verdicts %v: want exactly one gap", v)
	}
	rc, err := os.ReadFile(filepath.Join(dir, "receipts", "receipts.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(rc), `"verdict":"resealed"`); n < 4 {
		t.Fatalf("%d resealed receipts, want one per replaced batch (>= 4):\n%s", n, rc)
	}
	r2.stop()

	// After a restart the new stream goes on.
	r3 := startRig(t, dir, id, opts)
	emitRange(t, r3.p.Emitter("test/gen"), 60, 70)
	waitFor(t, "events after restart", 10*time.Second, func() bool { return restored.EventCount() == 40 })
	if b := restored.Batches(); b[len(b)-1].Stream != batches[0].Stream {
		t.Fatalf("after restart the agent sent stream %s, want %s", b[len(b)-1].Stream, batches[0].Stream)
	}
}

// TestGapResealOnFullSpool: the gap is found while the spool is full and
// the sealer waits for space that only acknowledgements make. The reseal
// must take the chain from the waiting seal, and everything arrives.
func TestGapResealOnFullSpool(t *testing.T) {
	id := testIdentity(t)
	dir := t.TempDir()
	opts := rigOptions{batchMaxEvents: 7, batchMaxWait: 20 * time.Millisecond, spoolMax: 24 << 10}
	_, restored := deliverThenRestore(t, dir, id, opts, 10)
	opts.recv = restored
	r2 := startRig(t, dir, id, opts)
	const n = 600
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		em := r2.p.Emitter("test/gen")
		for i := 10; i < 10+n; i++ {
			if err := em.Emit(context.Background(), collectors.Record{Event: testEvent(i), Position: []byte(strconv.Itoa(i + 1))}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	waitFor(t, "spool full", 10*time.Second, func() bool { return r2.sp.Stats().Full })
	restored.SetDown(false)
	<-emitted
	waitFor(t, "events after the loss delivered", 20*time.Second, func() bool { return restored.EventCount() == n })
	got := received(t, restored)
	for i, v := range got {
		if v != 10+i {
			t.Fatalf("event %d is user%d, want user%d: order or exactly-once broken", i, v, 10+i)
		}
	}
}
