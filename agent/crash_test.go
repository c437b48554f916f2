package agent_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
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
	"github.com/provtrail/provtrail/pipeline/positions"
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

// proc is one run of a provtrail binary.
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

func startProc(t *testing.T, logPath string, args ...string) *proc {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(provtrailBinary(t), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	return p
}

// sink is where the agent sends batches: the test receiver or a real
// central.
type sink interface {
	URL() string
	CA() string
	// Names returns the target user names of the stored events, in stored
	// order.
	Names(t *testing.T) []string
	// Streams returns the number of chain streams the agent has and
	// whether all of them are unbroken.
	Streams(t *testing.T) (int, bool)
}

type receiverSink struct{ r *testenv.Receiver }

func (s receiverSink) URL() string { return s.r.URL }
func (s receiverSink) CA() string  { return s.r.CAFile }
func (s receiverSink) Names(t *testing.T) []string {
	var out []string
	for _, b := range s.r.Batches() {
		for _, line := range b.Events {
			var e event.Event
			if err := json.Unmarshal(line, &e); err != nil {
				t.Fatal(err)
			}
			if err := event.Validate(&e); err != nil {
				t.Errorf("invalid event at central: %v", err)
			}
			out = append(out, e.Target.User.Name)
		}
	}
	return out
}
func (s receiverSink) Streams(t *testing.T) (int, bool) {
	streams := map[string]uint64{}
	ok := true
	for _, b := range s.r.Batches() {
		next, seen := streams[b.Stream]
		if (!seen && b.Seq != 0) || (seen && b.Seq != next) {
			ok = false
		}
		streams[b.Stream] = b.Seq + 1
	}
	v := s.r.Verdicts()
	if v["fork"]+v["bad_signature"]+v["unknown_key"]+v["gap"]+v["malformed"] > 0 {
		t.Logf("verdicts: %v", v)
		ok = false
	}
	return len(streams), ok
}

type crashRig struct {
	t       *testing.T
	dir     string
	cfgPath string
	authLog string
	sink    sink
	runs    int
}

// newCrashRig writes an agent key and agent.hcl with the real authlog
// collector; mkSink starts the sink for the agent's public key.
func newCrashRig(t *testing.T, audience, spoolMax string, mkSink func(dir string, pub crypto.PublicKey, pubPath string) sink) *crashRig {
	t.Helper()
	dir := t.TempDir()
	k, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	_, pubPath, err := signer.WriteKeyPair(dir, "agent", k, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &crashRig{t: t, dir: dir, cfgPath: filepath.Join(dir, "agent.hcl"), authLog: filepath.Join(dir, "auth.log")}
	r.sink = mkSink(dir, k.Public(), pubPath)
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
  audience         = %q
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
`, filepath.Join(dir, "state"), filepath.Join(dir, "agent.key"), r.sink.URL(), audience, r.sink.CA(), spoolMax, r.authLog)
	if err := os.WriteFile(r.cfgPath, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *crashRig) startAgent() *proc {
	r.t.Helper()
	r.runs++
	return startProc(r.t, filepath.Join(r.dir, fmt.Sprintf("agent-%02d.log", r.runs)),
		"agent", "--config", r.cfgPath, "--log-level", "debug", "--drain-timeout", "5s")
}

func (r *crashRig) logs() string {
	var b strings.Builder
	m, _ := filepath.Glob(filepath.Join(r.dir, "*.log"))
	for _, p := range m {
		if filepath.Base(p) == "auth.log" {
			continue
		}
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "==== %s\n%s", filepath.Base(p), data)
	}
	return b.String()
}

// authWriter appends useradd lines to the auth log, as useradd's syslog
// would, and counts them.
type authWriter struct {
	mu   sync.Mutex // write is called from the writer goroutine and tests
	f    *os.File
	n    atomic.Int64
	stop chan struct{}
	wg   sync.WaitGroup
}

func (w *authWriter) write(k int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
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

// startWriter keeps appending a few lines every few milliseconds until
// stopWriter.
func (r *crashRig) startWriter() *authWriter {
	f, err := os.OpenFile(r.authLog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	w := &authWriter{f: f, stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(time.Duration(5+mrand.IntN(20)) * time.Millisecond):
			}
			if err := w.write(1 + mrand.IntN(8)); err != nil {
				r.t.Error(err)
				return
			}
		}
	}()
	return w
}

func (w *authWriter) stopWriter() int {
	close(w.stop)
	w.wg.Wait()
	w.f.Close()
	return int(w.n.Load())
}

// killLoop starts the agent and SIGKILLs it at a random moment, kills
// times, while the writer appends lines. It returns the lines written.
func (r *crashRig) killLoop(kills int) int {
	t := r.t
	w := r.startWriter()
	for i := range kills {
		p := r.startAgent()
		// Early kills land in start-up (recovery, chain open); later ones
		// in the middle of reading, sealing, spooling and forwarding.
		var d time.Duration
		switch i % 3 {
		case 0:
			d = time.Duration(mrand.IntN(150)) * time.Millisecond
		default:
			d = time.Duration(150+mrand.IntN(900)) * time.Millisecond
		}
		time.Sleep(d)
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", i, err)
		}
		if p.wait(10*time.Second) == nil {
			t.Fatalf("agent %d did not die", i)
		}
	}
	return w.stopWriter()
}

// finish runs the agent until the sink holds n events, stops it with
// SIGTERM, and checks that every line arrived exactly once, in order, in
// one unbroken chain.
func (r *crashRig) finish(n int) {
	t := r.t
	p := r.startAgent()
	deadline := time.Now().Add(90 * time.Second)
	for len(r.sink.Names(t)) < n {
		if time.Now().After(deadline) {
			p.cmd.Process.Signal(syscall.SIGKILL)
			p.wait(10 * time.Second)
			t.Fatalf("sink has %d of %d events\n%s", len(r.sink.Names(t)), n, r.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // would any extra (duplicate) event arrive?
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(10 * time.Second); st == nil || st.ExitCode() != 0 {
		t.Fatalf("agent did not stop cleanly on SIGTERM: %v\n%s", st, r.logs())
	}
	names := r.sink.Names(t)
	if len(names) != n {
		t.Fatalf("sink holds %d events, want %d", len(names), n)
	}
	for i, name := range names {
		if name != fmt.Sprintf("user%d", i) {
			t.Fatalf("event %d is %s, want user%d (order or exactly-once broken)", i, name, i)
		}
	}
	streams, ok := r.sink.Streams(t)
	if streams != 1 || !ok {
		t.Fatalf("chain: %d streams, unbroken=%v\n%s", streams, ok, r.logs())
	}
	logs := r.logs()
	for _, bad := range []string{"signed batches were lost", "chain reset", "REJECTED", "cannot be read again"} {
		if strings.Contains(logs, bad) {
			t.Fatalf("agent logged %q:\n%s", bad, logs)
		}
	}
	t.Logf("%d lines, %d SIGKILLed runs; torn spool tails repaired: %d; chain completions after a kill: %d",
		n, r.runs-1, strings.Count(logs, "torn tail cut off"), strings.Count(logs, "completing interrupted seal"))
}

// TestCrashExactlyOnce kills the real agent binary with SIGKILL at random
// moments while useradd lines keep arriving in a real auth log, restarts it
// each time, and proves with a verifying receiver that every change arrived
// exactly once, in order, in one unbroken chain.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the agent binary")
	}
	var recv *testenv.Receiver
	r := newCrashRig(t, "crash-central", "64MiB", func(_ string, pub crypto.PublicKey, _ string) sink {
		recv = testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "crash-central",
			Agents: map[string]crypto.PublicKey{"host-1": pub}, TLS: true})
		return receiverSink{recv}
	})
	n := r.killLoop(24)
	r.finish(n)
	t.Logf("verdicts: %v (duplicates are resends after a kill, acknowledged and stored once)", recv.Verdicts())
}

// TestCrashExactlyOnceRealCentral is TestCrashExactlyOnce against the real
// central binary (transparency log, SQLite store): central de-duplicates
// resends and reports the chain's health.
func TestCrashExactlyOnceRealCentral(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the agent binary")
	}
	r := newCrashRig(t, "crash-central", "64MiB", func(dir string, _ crypto.PublicKey, pubPath string) sink {
		return startCentral(t, dir, "crash-central", pubPath)
	})
	n := r.killLoop(20)
	r.finish(n)
}

// TestReceiverDownSpoolFullPauses takes the receiver down while lines keep
// arriving: the real agent fills its small spool, stops reading the auth
// log (the file stays unread, nothing is dropped), and delivers everything
// in order once the receiver is back.
func TestReceiverDownSpoolFullPauses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	var recv *testenv.Receiver
	r := newCrashRig(t, "crash-central", "256KiB", func(_ string, pub crypto.PublicKey, _ string) sink {
		recv = testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "crash-central",
			Agents: map[string]crypto.PublicKey{"host-1": pub}, TLS: true})
		return receiverSink{recv}
	})
	recv.SetDown(true)
	p := r.startAgent()
	w := r.startWriter()
	// Under load until the spool is full and the agent says so.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(r.logs(), "spool full") {
		if time.Now().After(deadline) {
			t.Fatalf("spool never filled\n%s", r.logs())
		}
		w.write(200)
		time.Sleep(20 * time.Millisecond)
	}
	n := w.stopWriter()
	// Paused: the committed read offset stays put, well short of the end
	// of the file (the rest stays unread on disk, nothing is dropped).
	fi, _ := os.Stat(r.authLog)
	offset := func() int64 {
		time.Sleep(1500 * time.Millisecond) // the positions file is written every second
		ps, err := positions.Open(filepath.Join(r.dir, "state", "positions.json"))
		if err != nil {
			t.Fatal(err)
		}
		var pos struct {
			Files []struct {
				Offset int64 `json:"offset"`
			} `json:"files"`
		}
		if err := json.Unmarshal(ps.Get("authlog/system"), &pos); err != nil || len(pos.Files) == 0 {
			t.Fatalf("authlog position %q: %v", ps.Get("authlog/system"), err)
		}
		return pos.Files[0].Offset
	}
	o1 := offset()
	o2 := offset()
	t.Logf("spool full with %d lines written (%d bytes); read offset stays at %d", n, fi.Size(), o2)
	if o1 != o2 || o2 >= fi.Size() {
		t.Fatalf("collection did not pause: offset %d then %d of %d bytes", o1, o2, fi.Size())
	}
	if len(r.sink.Names(t)) != 0 {
		t.Fatal("receiver accepted while down")
	}
	recv.SetDown(false)
	deadline = time.Now().Add(60 * time.Second)
	for len(r.sink.Names(t)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after the receiver came back: %d of %d events\n%s", len(r.sink.Names(t)), n, r.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if st := p.wait(10 * time.Second); st == nil || st.ExitCode() != 0 {
		t.Fatalf("agent did not stop cleanly: %v", st)
	}
	names := r.sink.Names(t)
	for i, name := range names {
		if name != fmt.Sprintf("user%d", i) {
			seen := map[string]int{}
			for _, n := range names {
				seen[n]++
			}
			var missing, dup []int
			for j := range n {
				switch seen[fmt.Sprintf("user%d", j)] {
				case 0:
					missing = append(missing, j)
				case 1:
				default:
					dup = append(dup, j)
				}
			}
			var dump strings.Builder
			for _, b := range recv.Batches() {
				fmt.Fprintf(&dump, "seq %d:", b.Seq)
				for _, line := range b.Events {
					var e event.Event
					json.Unmarshal(line, &e)
					fmt.Fprintf(&dump, " %s@%d", e.Target.User.Name, *e.Source.Offset)
				}
				dump.WriteString("\n")
			}
			os.WriteFile(filepath.Join(os.TempDir(), "receiverdown-names.txt"), []byte(dump.String()), 0o644)
			t.Fatalf("event %d is %s, want user%d; %d events for %d lines; missing %v; duplicated %v\n%s", i, name, i, len(names), n, missing, dup, r.logs())
		}
	}
	if len(names) != n {
		t.Fatalf("%d events, want %d", len(names), n)
	}
	if streams, ok := r.sink.Streams(t); streams != 1 || !ok {
		t.Fatalf("chain: %d streams, unbroken=%v", streams, ok)
	}
	if !strings.Contains(r.logs(), "collection resumes") {
		t.Fatalf("agent never said collection resumed\n%s", r.logs())
	}
}

// centralSink is the real central binary.
type centralSink struct {
	url, ca string
	client  *http.Client
	p       *proc
}

func (c *centralSink) URL() string { return c.url }
func (c *centralSink) CA() string  { return c.ca }

func (c *centralSink) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := c.client.Get(c.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func (c *centralSink) Names(t *testing.T) []string {
	t.Helper()
	type ev struct {
		Time   time.Time `json:"time"`
		Target struct {
			User struct {
				Name string `json:"name"`
			} `json:"user"`
		} `json:"target"`
	}
	var all []ev
	after := ""
	for {
		var page struct {
			Events []ev   `json:"events"`
			Next   string `json:"next"`
		}
		q := url.Values{"limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		c.get(t, "/v1/events?"+q.Encode(), &page)
		all = append(all, page.Events...)
		if page.Next == "" || len(page.Events) == 0 {
			break
		}
		after = page.Next
	}
	// Central answers newest first or by time; the lines' times increase
	// with their number, so time order is write order.
	for i := 1; i < len(all); i++ {
		for j := i; j > 0 && all[j].Time.Before(all[j-1].Time); j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	out := make([]string, len(all))
	for i, e := range all {
		out[i] = e.Target.User.Name
	}
	return out
}

func (c *centralSink) Streams(t *testing.T) (int, bool) {
	t.Helper()
	var resp struct {
		Agents []struct {
			ID      string `json:"id"`
			Streams []struct {
				Chain  string `json:"chain"`
				Detail string `json:"detail"`
			} `json:"streams"`
		} `json:"agents"`
	}
	c.get(t, "/v1/agents", &resp)
	for _, a := range resp.Agents {
		if a.ID != "host-1" {
			continue
		}
		ok := true
		for _, s := range a.Streams {
			if s.Chain != "ok" {
				t.Logf("stream chain %s: %s", s.Chain, s.Detail)
				ok = false
			}
		}
		return len(a.Streams), ok
	}
	return 0, false
}

// startCentral runs the real central binary on a free loopback port with a
// self-signed certificate, enrolling the agent by its public key.
func startCentral(t *testing.T, dir, audience, agentPub string) *centralSink {
	t.Helper()
	cdir := filepath.Join(dir, "central")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := selfSigned(t)
	certPath, keyPath := filepath.Join(cdir, "tls.crt"), filepath.Join(cdir, "tls.key")
	os.WriteFile(certPath, certPEM, 0o600)
	os.WriteFile(keyPath, keyPEM, 0o600)
	lk, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	logKey, _, err := signer.WriteKeyPair(cdir, "log", lk, []byte("log-pass"))
	if err != nil {
		t.Fatal(err)
	}
	passPath := filepath.Join(cdir, "log.pass")
	os.WriteFile(passPath, []byte("log-pass\n"), 0o600)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := fmt.Sprintf(`
central {
  listen   = %q
  data_dir = %q
  audience = %q
}
tls {
  cert_file = %q
  key_file  = %q
}
log_signer {
  key_file        = %q
  passphrase_file = %q
  origin          = "test.local/provtrail"
}
agent "host-1" {
  public_key_file = %q
}
`, addr, filepath.Join(cdir, "data"), audience, certPath, keyPath, logKey, passPath, agentPub)
	cfgPath := filepath.Join(cdir, "central.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, filepath.Join(dir, "central.log"), "central", "--config", cfgPath)
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if p.wait(10*time.Second) == nil {
			p.cmd.Process.Kill()
			p.wait(5 * time.Second)
		}
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c := &centralSink{url: "https://" + addr, ca: certPath, p: p,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.client.Get(c.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "central.log"))
			t.Fatalf("central did not come up: %v\n%s", err, log)
		}
		select {
		case <-p.done:
			log, _ := os.ReadFile(filepath.Join(dir, "central.log"))
			t.Fatalf("central exited: %v\n%s", p.cmd.ProcessState, log)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "central.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// TestSIGHUPReload sends the running agent binary SIGHUP after adding a
// second auth log to its configuration, then after removing the first:
// the new collector starts, the removed one stops, and bringing it back
// resumes where it stopped, with nothing lost or repeated.
func TestSIGHUPReload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the agent binary")
	}
	var recv *testenv.Receiver
	r := newCrashRig(t, "crash-central", "64MiB", func(_ string, pub crypto.PublicKey, _ string) sink {
		recv = testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "crash-central",
			Agents: map[string]crypto.PublicKey{"host-1": pub}, TLS: true})
		return receiverSink{recv}
	})
	base, err := os.ReadFile(r.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(r.dir, "secure")
	os.WriteFile(second, nil, 0o640)
	block2 := fmt.Sprintf(`
collector "authlog" "second" {
  paths         = [%q]
  start_at      = "beginning"
  poll_interval = "50ms"
  flush_after   = "50ms"
}
`, second)
	without1 := strings.Replace(string(base), `collector "authlog" "system"`, `collector "authlog" "unused"`, 1)
	without1 = strings.Replace(without1, r.authLog, filepath.Join(r.dir, "none.log"), 1)
	writeCfg := func(src string) {
		if err := os.WriteFile(r.cfgPath, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	count := func(prefix string) int {
		n := 0
		for _, name := range r.sink.Names(t) {
			if strings.HasPrefix(name, prefix) {
				n++
			}
		}
		return n
	}
	waitCount := func(what string, cond func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, r.logs())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	appendLines := func(path, who string, from, n int) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i := from; i < from+n; i++ {
			ts := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
			fmt.Fprintf(f, "%s host-1 useradd[%d]: new user: name=%s%d, UID=%d, GID=%d, home=/home/x, shell=/bin/bash, from=none\n",
				ts.Format("2006-01-02T15:04:05.000000-07:00"), 5000+i, who, i, 20000+i, 20000+i)
		}
	}

	p := r.startAgent()
	appendLines(r.authLog, "a", 0, 50)
	waitCount("first file", func() bool { return count("a") == 50 })

	writeCfg(string(base) + block2)
	p.cmd.Process.Signal(syscall.SIGHUP)
	appendLines(second, "b", 0, 30)
	waitCount("second file after SIGHUP", func() bool { return count("b") == 30 })

	writeCfg(without1 + block2)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitCount("reload without the first collector", func() bool { return strings.Count(r.logs(), "reloaded collectors") >= 2 })
	appendLines(r.authLog, "a", 50, 40) // written while its collector is removed
	time.Sleep(500 * time.Millisecond)
	if n := count("a"); n != 50 {
		t.Fatalf("removed collector kept reading: %d events", n)
	}

	writeCfg(string(base) + block2)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitCount("first collector resumed", func() bool { return count("a") == 90 })
	p.cmd.Process.Signal(syscall.SIGTERM)
	if st := p.wait(10 * time.Second); st == nil || st.ExitCode() != 0 {
		t.Fatalf("agent did not stop cleanly: %v\n%s", st, r.logs())
	}
	seen := map[string]int{}
	for _, name := range r.sink.Names(t) {
		seen[name]++
	}
	for i := range 90 {
		if seen[fmt.Sprintf("a%d", i)] != 1 {
			t.Fatalf("a%d arrived %d times", i, seen[fmt.Sprintf("a%d", i)])
		}
	}
	if streams, ok := r.sink.Streams(t); streams != 1 || !ok {
		t.Fatalf("chain: %d streams, unbroken=%v", streams, ok)
	}
}
