package agent

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/testenv"
	"github.com/provtrail/provtrail/pipeline/positions"
	"github.com/provtrail/provtrail/signer"
)

// genConfig configures the test-only "gen" collector: it emits events
// numbered from its position up to count, one every interval, then waits.
type genConfig struct {
	Count    int    `hcl:"count"`
	Interval string `hcl:"interval,optional"`
}

func (genConfig) Validate() hcl.Diagnostics { return nil }

type genCollector struct {
	name     string
	count    int
	interval time.Duration
}

func (g *genCollector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	i := 0
	if start != nil {
		i, _ = strconv.Atoi(string(start))
	}
	for ; i < g.count; i++ {
		e := event.Event{
			ID: event.NewID("gen", g.name, strconv.Itoa(i)), Time: time.Now().UTC(), ObservedTime: time.Now().UTC(),
			Action: event.UserCreate, Target: event.Target{User: &event.User{Name: fmt.Sprintf("%s-%d", g.name, i)}},
			Source: event.Source{Collector: "gen", Instance: g.name},
		}
		e.Complete()
		if err := out.Emit(ctx, collectors.Record{Event: e, Position: []byte(strconv.Itoa(i + 1))}); err != nil {
			return err
		}
		if g.interval > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(g.interval):
			}
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

func genRegistry(t *testing.T) *collectors.Registry {
	reg, err := collectors.NewRegistry(collectors.Factory{
		Type: "gen",
		DecodeConfig: func(body hcl.Body, ctx *hcl.EvalContext) (collectors.Config, hcl.Diagnostics) {
			var c genConfig
			diags := gohcl.DecodeBody(body, ctx, &c)
			return &c, diags
		},
		New: func(set collectors.Settings, cfg collectors.Config) (collectors.Collector, error) {
			c := cfg.(*genConfig)
			d, _ := time.ParseDuration(c.Interval)
			return &genCollector{name: set.Name, count: c.Count, interval: d}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

type fixture struct {
	// forwardExtra is added to the forward block.
	forwardExtra string
	dir, cfgPath string
	recv         *testenv.Receiver
	reg          *collectors.Registry
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	k, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.WriteKeyPair(dir, "agent", k, nil); err != nil {
		t.Fatal(err)
	}
	recv := testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "test-central",
		Agents: map[string]crypto.PublicKey{"host-1": k.Public()}, TLS: true})
	f := &fixture{dir: dir, cfgPath: filepath.Join(dir, "agent.hcl"), recv: recv, reg: genRegistry(t)}
	return f
}

func (f *fixture) writeConfig(t *testing.T, collectorBlocks string) *Config {
	t.Helper()
	src := fmt.Sprintf(`
agent {
  id        = "host-1"
  state_dir = %q
  heartbeat_interval = "1h"
}
signer {
  key_file = %q
}
forward {
  url              = %q
  audience         = "test-central"
  ca_file          = %q
  batch_max_events = 10
  batch_max_wait   = "20ms"
  %s
}
metrics {
  listen = "127.0.0.1:0"
}
%s
`, filepath.Join(f.dir, "state"), filepath.Join(f.dir, "agent.key"), f.recv.URL, f.recv.CAFile, f.forwardExtra, collectorBlocks)
	if err := os.WriteFile(f.cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := LoadConfig(f.cfgPath, f.reg)
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg
}

type running struct {
	a       *Agent
	cancel  context.CancelFunc
	done    chan error
	metrics string
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, cfg *Config, reg *collectors.Registry) *running {
	t.Helper()
	return startDrain(t, cfg, reg, 5*time.Second)
}

func startDrain(t *testing.T, cfg *Config, reg *collectors.Registry, drain time.Duration) *running {
	t.Helper()
	ready := make(chan string, 1)
	logs := &syncBuffer{}
	a, err := New(cfg, Options{Registry: reg, DrainTimeout: drain, Ready: func(addr string) { ready <- addr },
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, cancel: cancel, done: make(chan error, 1), logs: logs}
	go func() { r.done <- a.Run(ctx) }()
	select {
	case r.metrics = <-ready:
	case err := <-r.done:
		t.Fatalf("agent did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not start")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("agent did not stop within its drain timeout")
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

// names returns the target user names central accepted, and how often.
func names(t *testing.T, recv *testenv.Receiver) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, b := range recv.Batches() {
		for _, line := range b.Events {
			var e event.Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatal(err)
			}
			out[e.Target.User.Name]++
		}
	}
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAgentDeliversServesMetricsAndDrains(t *testing.T) {
	f := newFixture(t)
	cfg := f.writeConfig(t, `collector "gen" "a" { count = 55 }`)
	r := start(t, cfg, f.reg)
	waitFor(t, "55 events at central", 10*time.Second, func() bool { return f.recv.EventCount() == 55 })
	code, body := get(t, "http://"+r.metrics+"/healthz")
	if code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}
	waitFor(t, "records_out metric", 5*time.Second, func() bool {
		_, m := get(t, "http://"+r.metrics+"/metrics")
		return strings.Contains(m, `provtrail_agent_records_out_total{collector="gen/a"} 55`)
	})
	_, m := get(t, "http://"+r.metrics+"/metrics")
	for _, want := range []string{
		`provtrail_agent_records_in_total{collector="gen/a"} 55`,
		`provtrail_agent_batches_total{kind="events"}`,
		`provtrail_agent_spool_bytes`,
		`provtrail_agent_forward_batches_total{verdict="accepted"}`,
		`provtrail_agent_collector_up{collector="gen/a"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	t0 := time.Now()
	r.stop(t)
	if d := time.Since(t0); d > 6*time.Second {
		t.Errorf("drain took %v", d)
	}
	for n, c := range names(t, f.recv) {
		if c != 1 {
			t.Errorf("%s arrived %d times", n, c)
		}
	}
	// A second agent on the same state dir resumes: no event again.
	r2 := start(t, cfg, f.reg)
	time.Sleep(300 * time.Millisecond)
	r2.stop(t)
	if n := f.recv.EventCount(); n != 55 {
		t.Fatalf("after restart central has %d events, want 55", n)
	}
}

func TestAgentStateDirLocked(t *testing.T) {
	f := newFixture(t)
	cfg := f.writeConfig(t, ``)
	start(t, cfg, f.reg)
	a, err := New(cfg, Options{Registry: f.reg})
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "in use by another agent") {
		t.Fatalf("second agent on the same state dir: %v", err)
	}
}

func TestAgentReload(t *testing.T) {
	f := newFixture(t)
	cfg := f.writeConfig(t, `collector "gen" "a" {
  count    = 1000000
  interval = "2ms"
}`)
	r := start(t, cfg, f.reg)
	waitFor(t, "events from gen/a", 10*time.Second, func() bool { return f.recv.EventCount() >= 20 })

	// Remove a, add b.
	cfg2 := f.writeConfig(t, `collector "gen" "b" { count = 30 }`)
	if err := r.a.Reload(context.Background(), cfg2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gen/b's events", 10*time.Second, func() bool {
		n := 0
		for name := range names(t, f.recv) {
			if strings.HasPrefix(name, "b-") {
				n++
			}
		}
		return n == 30
	})
	countA := func() int {
		n := 0
		for name := range names(t, f.recv) {
			if strings.HasPrefix(name, "a-") {
				n++
			}
		}
		return n
	}
	stoppedAt := countA()
	time.Sleep(200 * time.Millisecond)
	if countA() != stoppedAt {
		t.Fatal("gen/a kept running after it was removed")
	}

	// Bring a back: it resumes where it stopped, nothing twice, no gap.
	cfg3 := f.writeConfig(t, `collector "gen" "a" {
  count    = 1000000
  interval = "2ms"
}
collector "gen" "b" { count = 30 }`)
	if err := r.a.Reload(context.Background(), cfg3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "gen/a resumed", 10*time.Second, func() bool { return countA() > stoppedAt+20 })
	r.stop(t)
	got := names(t, f.recv)
	maxA := -1
	for name, c := range got {
		if c != 1 {
			t.Errorf("%s arrived %d times", name, c)
		}
		if n, ok := strings.CutPrefix(name, "a-"); ok {
			v, _ := strconv.Atoi(n)
			maxA = max(maxA, v)
		}
	}
	for i := 0; i <= maxA; i++ {
		if got[fmt.Sprintf("a-%d", i)] != 1 {
			t.Fatalf("a-%d missing after reload", i)
		}
	}
}

// TestConcurrentEmitters runs several collectors at once.
func TestConcurrentEmitters(t *testing.T) {
	f := newFixture(t)
	var blocks []string
	for i := range 4 {
		blocks = append(blocks, fmt.Sprintf(`collector "gen" "c%d" { count = 200 }`, i))
	}
	cfg := f.writeConfig(t, strings.Join(blocks, "\n"))
	r := start(t, cfg, f.reg)
	waitFor(t, "800 events", 20*time.Second, func() bool { return f.recv.EventCount() == 800 })
	r.stop(t)
	for n, c := range names(t, f.recv) {
		if c != 1 {
			t.Errorf("%s arrived %d times", n, c)
		}
	}
}

// TestCorruptLastSpoolRecord damages the newest record in the spool while
// the agent is down. The agent cuts it off (keeping a .broken copy), sends
// every other batch, reads the lost batch's records again from the source,
// and starts a new stream so that central accepts what follows the gap.
func TestCorruptLastSpoolRecord(t *testing.T) {
	f := newFixture(t)
	cfg := f.writeConfig(t, `collector "gen" "a" { count = 50 }`)
	f.recv.SetDown(true)
	r := startDrain(t, cfg, f.reg, 200*time.Millisecond)
	waitFor(t, "5 batches spooled", 10*time.Second, func() bool {
		st := r.a.sp.Stats()
		return st.Last >= 5 && st.Pending >= 5
	})
	// Let the positions file catch up with the spool (it is written every
	// second and at shutdown), so that it names the batch about to be lost.
	waitFor(t, "positions committed", 5*time.Second, func() bool {
		ps, err := positions.Open(filepath.Join(f.dir, "state", "positions.json"))
		return err == nil && string(ps.Get("gen/a")) == "50" && ps.All()["gen/a"].Index == r.a.sp.Stats().Last
	})
	r.stop(t)

	segs, _ := filepath.Glob(filepath.Join(f.dir, "state", "spool", "seg-*.wal"))
	if len(segs) == 0 {
		t.Fatal("no spool segment")
	}
	newest := segs[len(segs)-1]
	data, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-40] ^= 0x55 // inside the last frame's payload
	if err := os.WriteFile(newest, data, 0o600); err != nil {
		t.Fatal(err)
	}

	f.recv.SetDown(false)
	r2 := start(t, cfg, f.reg)
	waitFor(t, "all 50 events at central", 10*time.Second, func() bool { return f.recv.EventCount() >= 50 })
	time.Sleep(200 * time.Millisecond)
	r2.stop(t)
	got := names(t, f.recv)
	if len(got) != 50 {
		t.Fatalf("central has %d distinct events, want 50", len(got))
	}
	for n, c := range got {
		if c != 1 {
			t.Errorf("%s arrived %d times", n, c)
		}
	}
	broken, _ := filepath.Glob(filepath.Join(f.dir, "state", "spool", "*.broken-*"))
	if len(broken) != 1 {
		t.Fatalf(".broken copies: %v", broken)
	}
	kept, _ := os.ReadFile(broken[0])
	if !bytes.Equal(kept, data) {
		t.Fatal(".broken copy is not the damaged segment")
	}
	// The batches before the damaged one were delivered in the first
	// stream; the rest went into a new stream that names it.
	streams := map[string]string{}
	for _, b := range f.recv.Batches() {
		if _, ok := streams[b.Stream]; !ok {
			streams[b.Stream] = b.PrevStream
		}
	}
	if len(streams) != 2 {
		t.Fatalf("streams at central: %v", streams)
	}
	if v := f.recv.Verdicts(); v["fork"]+v["bad_signature"]+v["gap"] != 0 {
		t.Fatalf("verdicts: %v", v)
	}
	logs := r2.logs.String()
	for _, want := range []string{"torn tail cut off", "the collector reads those records again", "starting a new stream"} {
		if !strings.Contains(logs, want) {
			t.Errorf("agent did not say %q:\n%s", want, logs)
		}
	}
}

// TestDrainWhileSpoolFull: SIGTERM while central is down and the spool is
// full ends within the drain timeout, cleanly; the next start delivers
// everything exactly once.
func TestDrainWhileSpoolFull(t *testing.T) {
	f := newFixture(t)
	f.forwardExtra = `spool_max_bytes = "64KiB"
  batch_max_bytes = "16KiB"`
	cfg := f.writeConfig(t, `collector "gen" "a" { count = 3000 }`)
	f.recv.SetDown(true)
	r := startDrain(t, cfg, f.reg, time.Second)
	waitFor(t, "spool full", 20*time.Second, func() bool { return r.a.sp.Stats().Full })
	t0 := time.Now()
	r.stop(t)
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("shutdown under backpressure took %v", d)
	}
	f.recv.SetDown(false)
	r2 := start(t, cfg, f.reg)
	waitFor(t, "all 3000 events", 60*time.Second, func() bool { return f.recv.EventCount() == 3000 })
	r2.stop(t)
	for n, c := range names(t, f.recv) {
		if c != 1 {
			t.Fatalf("%s arrived %d times", n, c)
		}
	}
}
