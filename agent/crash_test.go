package agent_test

import (
	"bytes"
	"crypto"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/testenv"
	"github.com/provtrail/provtrail/signer"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// provtrailBinary builds the real provtrail binary once per test run.
func provtrailBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "provtrail-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "provtrail")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/provtrail/provtrail/cmd/provtrail")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type crashRig struct {
	t       *testing.T
	dir     string
	bin     string
	cfgPath string
	authLog string
	recv    *testenv.Receiver
	runs    int
}

func newCrashRig(t *testing.T, hclExtra string, spoolMax string) *crashRig {
	t.Helper()
	dir := t.TempDir()
	k, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.WriteKeyPair(dir, "agent", k, nil); err != nil {
		t.Fatal(err)
	}
	r := &crashRig{t: t, dir: dir, bin: provtrailBinary(t), cfgPath: filepath.Join(dir, "agent.hcl"),
		authLog: filepath.Join(dir, "auth.log")}
	r.recv = testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "crash-central",
		Agents: map[string]crypto.PublicKey{"host-1": k.Public()}, TLS: true})
	if err := os.WriteFile(r.authLog, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`
agent {
  id                 = "host-1"
  state_dir          = %q
  heartbeat_interval = "1h"
}
signer {
  key_file = %q
}
forward {
  url              = %q
  audience         = "crash-central"
  ca_file          = %q
  batch_max_events = 20
  batch_max_wait   = "30ms"
  batch_max_bytes  = "64KiB"
  spool_max_bytes  = %q
}
collector "authlog" "system" {
  paths         = [%q]
  start_at      = "beginning"
  poll_interval = "50ms"
  flush_after   = "50ms"
}
%s
`, filepath.Join(dir, "state"), filepath.Join(dir, "agent.key"), r.recv.URL, r.recv.CAFile, spoolMax, r.authLog, hclExtra)
	if err := os.WriteFile(r.cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// proc is one run of the agent binary.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process exited and was reaped
}

// wait waits up to d for the process to exit and returns its state (nil
// if it is still running).
func (p *proc) wait(d time.Duration) *os.ProcessState {
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(d):
		return nil
	}
}

// start runs the agent binary; its log goes to agent-N.log.
func (r *crashRig) start() *proc {
	r.t.Helper()
	r.runs++
	logf, err := os.Create(filepath.Join(r.dir, fmt.Sprintf("agent-%02d.log", r.runs)))
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(r.bin, "agent", "--config", r.cfgPath, "--log-level", "debug", "--drain-timeout", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return p
}

func (r *crashRig) logs() string {
	var b strings.Builder
	m, _ := filepath.Glob(filepath.Join(r.dir, "agent-*.log"))
	for _, p := range m {
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "==== %s\n%s", filepath.Base(p), data)
	}
	return b.String()
}

// authWriter appends useradd lines to the auth log, as useradd's syslog
// would, and counts them.
type authWriter struct {
	f *os.File
	n atomic.Int64
}

func (w *authWriter) write(k int) error {
	var b bytes.Buffer
	for range k {
		i := w.n.Load()
		ts := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
		fmt.Fprintf(&b, "%s host-1 useradd[%d]: new user: name=user%d, UID=%d, GID=%d, home=/home/user%d, shell=/bin/bash, from=none\n",
			ts.Format("2006-01-02T15:04:05.000000-07:00"), 1000+i, i, 10000+i, 10000+i, i)
		w.n.Add(1)
	}
	_, err := w.f.Write(b.Bytes())
	return err
}

// check verifies that central holds user0..user(n-1) exactly once each, in
// order, in one unbroken stream.
func (r *crashRig) check(n int) {
	r.t.Helper()
	batches := r.recv.Batches()
	streams := map[string]bool{}
	seen := map[string]int{}
	next := 0
	var lastSeq uint64
	for i, b := range batches {
		streams[b.Stream] = true
		if i > 0 && b.Seq != lastSeq+1 {
			r.t.Fatalf("accepted seq %d after %d", b.Seq, lastSeq)
		}
		lastSeq = b.Seq
		for _, line := range b.Events {
			var e event.Event
			if err := json.Unmarshal(line, &e); err != nil {
				r.t.Fatal(err)
			}
			if err := event.Validate(&e); err != nil {
				r.t.Errorf("invalid event at central: %v", err)
			}
			name := e.Target.User.Name
			seen[name]++
			if name != fmt.Sprintf("user%d", next) {
				r.t.Fatalf("event %d at central is %s, want user%d (order or exactly-once broken)", next, name, next)
			}
			next++
		}
	}
	if len(streams) != 1 {
		r.t.Fatalf("chain is not one unbroken stream: %d streams", len(streams))
	}
	if next != n {
		r.t.Fatalf("central holds %d events, want %d", next, n)
	}
	for name, c := range seen {
		if c != 1 {
			r.t.Fatalf("%s stored %d times", name, c)
		}
	}
	if batches[0].Seq != 0 {
		r.t.Fatalf("first accepted seq is %d", batches[0].Seq)
	}
}

func waitEvents(t *testing.T, recv *testenv.Receiver, n int, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if recv.EventCount() >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestCrashExactlyOnce kills the real agent binary with SIGKILL at random
// moments while useradd lines keep arriving in a real auth log, restarts it
// each time, and proves that central got every change exactly once, in
// order, in one unbroken chain.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the agent binary")
	}
	r := newCrashRig(t, "", "64MiB")
	f, err := os.OpenFile(r.authLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &authWriter{f: f}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
			}
			if err := w.write(1 + rand.IntN(8)); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	const kills = 24
	for i := range kills {
		p := r.start()
		// Early kills land in start-up (recovery, chain open); later ones
		// in the middle of reading, sealing, spooling and forwarding.
		var d time.Duration
		switch i % 3 {
		case 0:
			d = time.Duration(rand.IntN(150)) * time.Millisecond
		default:
			d = time.Duration(150+rand.IntN(900)) * time.Millisecond
		}
		time.Sleep(d)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		if p.wait(10*time.Second) == nil {
			t.Fatalf("agent %d did not die", i)
		}
	}
	close(stop)
	wg.Wait()
	n := int(w.n.Load())
	t.Logf("%d lines written across %d SIGKILLed runs; central holds %d events so far", n, kills, r.recv.EventCount())

	p := r.start()
	if !waitEvents(t, r.recv, n, 60*time.Second) {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(10 * time.Second)
		t.Fatalf("central has %d of %d events\n%s", r.recv.EventCount(), n, r.logs())
	}
	time.Sleep(300 * time.Millisecond) // would any extra (duplicate) event arrive?
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(10 * time.Second); st == nil || st.ExitCode() != 0 {
		t.Fatalf("agent did not stop cleanly on SIGTERM: %v\n%s", st, r.logs())
	}
	r.check(n)
	v := r.recv.Verdicts()
	if v["fork"]+v["bad_signature"]+v["unknown_key"]+v["gap"]+v["malformed"] > 0 {
		t.Fatalf("central saw a broken chain: %v", v)
	}
	t.Logf("verdicts: %v (duplicates are resends after a kill, acknowledged and stored once)", v)
	logs := r.logs()
	for _, bad := range []string{"chain reset", "REJECTED"} {
		if strings.Contains(logs, bad) {
			t.Fatalf("agent logged %q:\n%s", bad, logs)
		}
	}
	t.Logf("torn spool tails repaired across runs: %d", strings.Count(logs, "torn tail cut off"))
}
