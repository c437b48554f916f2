package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	pcoll "github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/pipeline"
	"github.com/provtrail/provtrail/pipeline/correlate"
	"github.com/provtrail/provtrail/pipeline/positions"
	"github.com/provtrail/provtrail/pipeline/spool"
	"github.com/provtrail/provtrail/signer"
)

// DefaultDrainTimeout bounds a clean shutdown.
const DefaultDrainTimeout = 10 * time.Second

// Options are the agent's process-level settings, not part of agent.hcl.
type Options struct {
	Registry *pcoll.Registry
	Logger   *slog.Logger
	// DrainTimeout bounds shutdown: stopping collectors, sealing what they
	// emitted, and delivering what is spooled (DefaultDrainTimeout when 0).
	DrainTimeout time.Duration
	// Passphrase, when set, unlocks an encrypted identity key; otherwise
	// the signer block's passphrase_file / passphrase_env are used.
	Passphrase []byte
	// Version is sent in the User-Agent.
	Version string
	// Ready, when set, is called once the agent is running, with the
	// address the metrics endpoint listens on ("" when disabled).
	Ready func(metricsAddr string)
}

// Agent is one running agent. Create it with New and call Run once.
type Agent struct {
	opt Options
	log *slog.Logger

	mu  sync.Mutex // guards cfg and running
	cfg *Config
	// running collectors by key "TYPE/NAME"
	running map[string]*runningCollector

	reg     *prometheus.Registry
	pm      *pipeline.Metrics
	problem *prometheus.CounterVec
	restart *prometheus.CounterVec
	up      *prometheus.GaugeVec

	sp     *spool.Spool
	ps     *positions.Store
	status *statusReporter
	chain  *signer.Chain
	p      *pipeline.Pipeline
	fw     *pipeline.Forwarder

	collCtx context.Context
	collWG  sync.WaitGroup
}

type runningCollector struct {
	cfg    CollectorConfig
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks the configuration against the environment; Run does the
// rest.
func New(cfg *Config, opt Options) (*Agent, error) {
	if cfg == nil || opt.Registry == nil {
		return nil, errors.New("agent: config and collector registry are required")
	}
	if opt.DrainTimeout <= 0 {
		opt.DrainTimeout = DefaultDrainTimeout
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{opt: opt, log: log, cfg: cfg, running: map[string]*runningCollector{}}
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.pm = pipeline.NewMetrics(a.reg)
	a.problem = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "provtrail_agent_collector_problems_total", Help: "Input records a collector could not read (reported, skipped).",
	}, []string{"collector"})
	a.restart = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "provtrail_agent_collector_restarts_total", Help: "Times a collector stopped with an error and was started again.",
	}, []string{"collector"})
	a.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "provtrail_agent_collector_up", Help: "1 while a collector instance is running.",
	}, []string{"collector"})
	a.reg.MustRegister(a.problem, a.restart, a.up)
	return a, nil
}

// Registry is the agent's Prometheus registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Run runs the agent until ctx is cancelled, then drains: collectors stop,
// what they emitted is sealed and spooled, positions are committed, and
// the forwarder gets until the drain timeout to deliver what is spooled.
func (a *Agent) Run(ctx context.Context) (err error) {
	cfg := a.config()
	stateDir := cfg.Agent.StateDir
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("agent: state_dir: %w", err)
	}
	unlock, err := lockDir(stateDir)
	if err != nil {
		return err
	}
	defer unlock()

	id, err := a.loadIdentity(ctx, cfg.Signer)
	if err != nil {
		return err
	}
	a.sp, err = spool.Open(spool.Config{Dir: filepath.Join(stateDir, "spool"), MaxBytes: cfg.Forward.SpoolMaxBytes, Logger: a.log})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer a.sp.Close()
	a.registerSpoolMetrics()
	a.ps, err = positions.Open(filepath.Join(stateDir, "positions.json"))
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	through, err := pipeline.Recover(a.sp, a.ps, a.log)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.chain, err = signer.OpenChain(ctx, signer.ChainConfig{
		Dir: filepath.Join(stateDir, "chain"), Audience: cfg.Forward.Audience, AgentID: cfg.Agent.ID,
		Identity: id, Encoding: encoding(cfg.Forward.Compression), Logger: a.log,
		LastStored: func(context.Context) ([]byte, error) {
			env, err := pipeline.LastStored(a.sp)
			if env != nil || err != nil {
				return env, err
			}
			return pipeline.LastAckedEnvelope(stateDir)
		},
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer a.chain.Close()
	if err := a.resetIfBatchesLost(ctx, stateDir); err != nil {
		return err
	}
	info := a.chain.Info()
	if info.Started && info.PrevStream != "" {
		a.log.Warn("chain reset: a new stream replaces the previous one; central will alert", "stream", info.StreamID, "prev_stream", info.PrevStream)
	}
	a.log.Info("agent starting", "agent_id", cfg.Agent.ID, "state_dir", stateDir, "stream", info.StreamID,
		"next_seq", info.NextSeq, "central", cfg.Forward.URL, "collectors", len(cfg.Collectors))

	a.p, err = pipeline.New(pipeline.Config{
		Spool: a.sp, Positions: a.ps, Chain: a.chain,
		BatchMaxEvents: cfg.Forward.BatchMaxEvents, BatchMaxBytes: cfg.Forward.BatchMaxBytes, BatchMaxWait: cfg.Forward.BatchMaxWait,
		Heartbeat: cfg.Agent.HeartbeatInterval, Metrics: a.pm, Logger: a.log,
		Correlate: correlation(cfg, a.log),
	}, through)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	client, err := pipeline.NewHTTPClient(pipeline.TLSFiles{CAFile: cfg.Forward.CAFile, CertFile: cfg.Forward.CertFile, KeyFile: cfg.Forward.KeyFile}, cfg.Forward.Timeout)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	var prover *pipeline.Prover
	if cfg.Forward.LogKeyFile != "" {
		vkey, err := os.ReadFile(cfg.Forward.LogKeyFile)
		if err != nil {
			return fmt.Errorf("agent: forward.log_key_file: %w", err)
		}
		prover, err = pipeline.NewProver(pipeline.ProverConfig{
			URL: cfg.Forward.URL, Client: client, AgentID: cfg.Agent.ID, StateDir: stateDir,
			LogKey: string(vkey), Interval: cfg.Forward.ProofInterval, Metrics: a.pm, Logger: a.log,
		})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	} else {
		a.log.Info("no forward.log_key_file: acknowledged batches are not checked against central's transparency log")
	}
	fwCfg := pipeline.ForwarderConfig{
		URL: cfg.Forward.URL, Client: client, Spool: a.sp, Commit: a.p.CommitPositions, StateDir: stateDir,
		UserAgent: "provtrail-agent/" + a.opt.Version, Metrics: a.pm, Logger: a.log,
		Reseal: a.p.Reseal,
	}
	if prover != nil {
		fwCfg.OnReceipt = prover.Add
	}
	a.fw, err = pipeline.NewForwarder(fwCfg)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}

	// Metrics and health.
	metricsAddr := ""
	if cfg.Metrics.Listen != "" {
		srv, addr, err := a.serveMetrics(cfg.Metrics.Listen)
		if err != nil {
			return err
		}
		metricsAddr = addr
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
	}

	a.status = newStatusReporter(cfg.Forward.URL, cfg.Forward.Audience, cfg.Agent.ID, id, client, a.sp, a.log)

	pipeCtx, pipeCancel := context.WithCancel(context.Background())
	defer pipeCancel()
	fwCtx, fwCancel := context.WithCancel(context.Background())
	defer fwCancel()
	var bg sync.WaitGroup
	errc := make(chan error, 2)
	bg.Add(3)
	go func() {
		defer bg.Done()
		a.status.run(fwCtx)
	}()
	go func() {
		defer bg.Done()
		if err := a.p.Run(pipeCtx); err != nil {
			errc <- fmt.Errorf("pipeline: %w", err)
		}
	}()
	go func() {
		defer bg.Done()
		if err := a.fw.Run(fwCtx); err != nil {
			errc <- fmt.Errorf("forwarder: %w", err)
		}
	}()
	if prover != nil {
		bg.Go(func() { prover.Run(fwCtx) })
	}

	collCtx, collCancel := context.WithCancel(context.Background())
	defer collCancel()
	a.mu.Lock()
	a.collCtx = collCtx // Reload may run from now on
	for _, cc := range cfg.Collectors {
		if err := a.startCollectorLocked(cc); err != nil {
			a.mu.Unlock()
			collCancel()
			a.collWG.Wait()
			a.p.Close()
			pipeCancel()
			fwCancel()
			bg.Wait()
			return err
		}
	}
	a.mu.Unlock()
	if a.opt.Ready != nil {
		a.opt.Ready(metricsAddr)
	}

	var runErr error
	select {
	case <-ctx.Done():
		a.log.Info("agent stopping: draining", "timeout", a.opt.DrainTimeout)
	case runErr = <-errc:
		a.log.Error("agent stopping after a pipeline failure", "err", runErr)
	}

	// Drain, bounded.
	deadline := time.Now().Add(a.opt.DrainTimeout)
	collCancel()
	waitUntil(deadline, func() { a.collWG.Wait() })
	a.p.Close()
	if !waitUntil(deadline, func() { <-a.p.Done() }) {
		a.log.Warn("drain timeout: records not yet sealed will be read again at the next start")
	}
	pipeCancel()
	// Give the forwarder the rest of the time to deliver what is spooled.
	for time.Now().Before(deadline) && a.sp.Stats().Pending > 0 && len(errc) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	fwCancel()
	bg.Wait()
	st := a.sp.Stats()
	a.log.Info("agent stopped", "spooled_batches_pending", st.Pending, "spool_bytes", st.Bytes)
	if runErr == nil {
		select {
		case runErr = <-errc:
		default:
		}
	}
	return runErr
}

// resetIfBatchesLost starts a new stream when sealed batches of the
// current one are gone from both the spool and the receipts (the spool's
// tail was damaged and cut off, or the spool was deleted): central could
// never accept anything after that gap. The records of a lost batch are
// read again (see pipeline.Recover) and go into the new stream; central
// sees the reset and alerts on it.
func (a *Agent) resetIfBatchesLost(ctx context.Context, stateDir string) error {
	info := a.chain.Info()
	if info.NextSeq == 0 {
		return nil
	}
	env, err := pipeline.LastStored(a.sp)
	if err == nil && env == nil {
		env, err = pipeline.LastAckedEnvelope(stateDir)
	}
	if err != nil {
		return fmt.Errorf("agent: newest stored batch: %w", err)
	}
	lostFrom := uint64(0)
	if env != nil {
		h, err := pipeline.EnvelopeHeader(env)
		if err != nil {
			return fmt.Errorf("agent: newest stored batch: %w", err)
		}
		if h.StreamID != info.StreamID || h.Seq+1 >= info.NextSeq {
			return nil
		}
		lostFrom = h.Seq + 1
	}
	a.log.Error("signed batches were lost from the spool before central acknowledged them; starting a new stream (central will report the reset and the gap)",
		"stream", info.StreamID, "lost_from_seq", lostFrom, "lost_to_seq", info.NextSeq-1)
	if err := a.chain.Reset(ctx); err != nil {
		return fmt.Errorf("agent: reset chain: %w", err)
	}
	return nil
}

// correlation turns on merging of host collectors' evidence when at least
// two of the correlated collector types are configured; with one there is
// nothing to merge and holding events would only add latency.
func correlation(cfg *Config, log *slog.Logger) *correlate.Config {
	present := map[string]bool{}
	for _, cc := range cfg.Collectors {
		if slices.Contains(correlate.DefaultCollectors, cc.Type) {
			present[cc.Type] = true
		}
	}
	if len(present) < 2 {
		return nil
	}
	types := slices.Sorted(maps.Keys(present))
	log.Info("correlating evidence of one change across collectors", "types", types)
	return &correlate.Config{Collectors: types}
}

func waitUntil(deadline time.Time, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(time.Until(deadline)):
		return false
	}
}

func (a *Agent) config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func encoding(c string) signer.Encoding {
	switch c {
	case "gzip":
		return signer.EncodingGzip
	case "none":
		return signer.EncodingIdentity
	default:
		return signer.EncodingZstd
	}
}

func (a *Agent) loadIdentity(ctx context.Context, s SignerSettings) (*signer.PrivateKey, error) {
	ref := s.KeyFile
	if ref == "" {
		ref = s.KeyRef
	}
	pass := a.opt.Passphrase
	if pass == nil && !signer.IsKMSRef(ref) {
		src := signer.PassphraseSource{File: s.PassphraseFile, Env: s.PassphraseEnv}
		p, err := src.Resolve()
		if err != nil && !errors.Is(err, signer.ErrNoPassphrase) {
			return nil, fmt.Errorf("agent: signer passphrase: %w", err)
		}
		pass = p
		defer clear(p)
	}
	k, err := signer.LoadPrivateKey(ctx, ref, pass)
	if err != nil {
		return nil, fmt.Errorf("agent: signer key: %w", err)
	}
	return k, nil
}

// lockDir takes an exclusive lock on state_dir/lock so that two agents
// never share a state dir (the kernel drops the lock when the process dies).
func lockDir(dir string) (func(), error) {
	p := filepath.Join(dir, "lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("agent: state_dir %s is in use by another agent (%s is locked): %w", dir, p, err)
	}
	return func() { f.Close() }, nil
}

func (a *Agent) registerSpoolMetrics() {
	gauge := func(name, help string, f func(spool.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(a.sp.Stats()) })
	}
	a.reg.MustRegister(
		gauge("provtrail_agent_spool_bytes", "Size of the spool's segment files.", func(s spool.Stats) float64 { return float64(s.Bytes) }),
		gauge("provtrail_agent_spool_max_bytes", "The spool's bound (spool_max_bytes).", func(s spool.Stats) float64 { return float64(s.Max) }),
		gauge("provtrail_agent_spool_pending_batches", "Batches spooled and not yet acknowledged by central.", func(s spool.Stats) float64 { return float64(s.Pending) }),
		gauge("provtrail_agent_spool_full", "1 while the spool is full and collection is paused.", func(s spool.Stats) float64 {
			if s.Full {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "provtrail_agent_spool_full_total", Help: "Times the spool became full."},
			func() float64 { return float64(a.sp.Stats().FullEvents) }),
		gauge("provtrail_agent_spool_recovered_damage", "Torn tails and damaged regions found when the spool was opened.", func(s spool.Stats) float64 {
			return float64(s.TornTails + s.DamagedRegions)
		}),
	)
}

func (a *Agent) serveMetrics(listen string) (*http.Server, string, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, "", fmt.Errorf("agent: metrics.listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		a.log.Warn("metrics endpoint is not on a loopback address", "listen", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("agent: metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", a.handleHealth)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	a.log.Info("metrics and health endpoint listening", "addr", ln.Addr().String())
	return srv, ln.Addr().String(), nil
}

func (a *Agent) handleHealth(w http.ResponseWriter, _ *http.Request) {
	st := a.sp.Stats()
	info := a.chain.Info()
	a.mu.Lock()
	var running []string
	for k := range a.running {
		running = append(running, k)
	}
	a.mu.Unlock()
	status := "ok"
	code := http.StatusOK
	if st.Full {
		status = "spool_full"
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"status":%q,"stream":%q,"next_seq":%d,"spool_bytes":%d,"spool_max_bytes":%d,"pending_batches":%d,"collectors":%d}`+"\n",
		status, info.StreamID, info.NextSeq, st.Bytes, st.Max, st.Pending, len(running))
}

// startCollectorLocked creates and starts one collector; a.mu is held.
func (a *Agent) startCollectorLocked(cc CollectorConfig) error {
	key := cc.Type + "/" + cc.Name
	fac, err := a.opt.Registry.Lookup(cc.Type)
	if err != nil {
		return fmt.Errorf("agent: collector %s: %w", key, err)
	}
	dir := filepath.Join(a.cfg.Agent.StateDir, "collectors", cc.Type, cc.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: collector %s: %w", key, err)
	}
	host := a.cfg.Agent.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	clog := a.log.With("collector", key)
	problems := a.problem.WithLabelValues(key)
	set := pcoll.Settings{
		Type: cc.Type, Name: cc.Name, Hostname: host, StateDir: dir, Logger: clog,
		Problems: pcoll.ProblemFunc(func(p pcoll.Problem) {
			problems.Inc()
			if strings.HasPrefix(p.Reason, "gap:") {
				// Records the source lost before we read them: central
				// must hear of it (a signed status report).
				clog.Error("source gap", "where", p.Where, "reason", p.Reason)
				a.status.gap(key, p.Reason)
				return
			}
			clog.Warn("input record skipped", "where", p.Where, "reason", p.Reason, "sample", p.Sample)
		}),
	}
	c, err := fac.New(set, cc.Config)
	if err != nil {
		return fmt.Errorf("agent: collector %s: %w", key, err)
	}
	ctx, cancel := context.WithCancel(a.collCtx)
	rc := &runningCollector{cfg: cc, cancel: cancel, done: make(chan struct{})}
	a.running[key] = rc
	a.collWG.Add(1)
	go func() {
		defer a.collWG.Done()
		defer close(rc.done)
		a.runCollector(ctx, key, c, clog)
	}()
	return nil
}

// runCollector runs c, restarting it with backoff when it fails, each time
// from the committed position of everything it emitted so far.
func (a *Agent) runCollector(ctx context.Context, key string, c pcoll.Collector, log *slog.Logger) {
	up := a.up.WithLabelValues(key)
	up.Set(1)
	defer up.Set(0)
	em := a.p.Emitter(key)
	backoff := time.Second
	for {
		start := a.ps.Get(key)
		log.Info("collector starting", "resume", len(start) > 0)
		t0 := time.Now()
		err := c.Run(ctx, start, em)
		if ctx.Err() != nil {
			return
		}
		if time.Since(t0) > time.Minute {
			backoff = time.Second
		}
		a.restart.WithLabelValues(key).Inc()
		log.Error("collector stopped; restarting", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
		// Everything it emitted must be spooled (its positions set) before
		// it resumes, or it would read those records again.
		if err := a.p.Flush(ctx); err != nil {
			return
		}
	}
}

// Reload applies a new configuration: collectors that were removed stop,
// new ones start, changed ones restart; each resumes from its committed
// position. Settings outside the collector blocks need a restart and are
// reported as such.
func (a *Agent) Reload(ctx context.Context, cfg *Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.collCtx == nil {
		return errors.New("agent: not running yet")
	}
	if a.collCtx.Err() != nil {
		return errors.New("agent: stopping")
	}
	old := a.cfg
	if !reflect.DeepEqual(old.Agent, cfg.Agent) || !reflect.DeepEqual(old.Signer, cfg.Signer) ||
		!reflect.DeepEqual(old.Forward, cfg.Forward) || !reflect.DeepEqual(old.Metrics, cfg.Metrics) {
		a.log.Warn("reload: only collector blocks are reloaded; restart the agent to apply agent, signer, forward or metrics changes")
	}
	want := map[string]CollectorConfig{}
	for _, cc := range cfg.Collectors {
		want[cc.Type+"/"+cc.Name] = cc
	}
	var stopped []*runningCollector
	var stoppedKeys []string
	for key, rc := range a.running {
		nc, keep := want[key]
		if keep && reflect.DeepEqual(nc.Config, rc.cfg.Config) {
			continue
		}
		rc.cancel()
		stopped = append(stopped, rc)
		stoppedKeys = append(stoppedKeys, key)
	}
	for _, rc := range stopped {
		select {
		case <-rc.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, key := range stoppedKeys {
		delete(a.running, key)
	}
	// Seal what the stopped collectors emitted so that their positions are
	// in the store before a replacement resumes from them.
	if err := a.p.Flush(ctx); err != nil {
		return fmt.Errorf("agent: reload: %w", err)
	}
	newCfg := *old
	newCfg.Collectors = cfg.Collectors
	a.cfg = &newCfg
	var errs []error
	started := 0
	for key, cc := range want {
		if _, ok := a.running[key]; ok {
			continue
		}
		if err := a.startCollectorLocked(cc); err != nil {
			errs = append(errs, err)
			continue
		}
		started++
	}
	if !reflect.DeepEqual(correlation(old, slog.New(slog.DiscardHandler)), correlation(&newCfg, slog.New(slog.DiscardHandler))) {
		a.log.Warn("reload: the set of correlated collector types changed; restart the agent to apply it")
	}
	a.log.Info("reloaded collectors", "stopped", len(stoppedKeys), "started", started, "running", len(a.running))
	return errors.Join(errs...)
}
