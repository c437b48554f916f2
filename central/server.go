package central

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/signer"
)

// Options are the parts of a Server that do not come from central.hcl.
type Options struct {
	Logger *slog.Logger
	// LogBatchMaxAge and CheckpointInterval override the log defaults.
	LogBatchMaxAge     time.Duration
	CheckpointInterval time.Duration
	// OnStored, when set, is called after each accepted batch is committed
	// (provtrail dev prints the events from it). It must not block long.
	OnStored func(ctx context.Context, b Batch, events []StoredEvent)
}

// Server is a running central: store, log, ingest and the HTTP API.
type Server struct {
	cfg      *Config
	opts     Options
	logger   *slog.Logger
	store    *SQLite
	log      *Log
	ingester *Ingester
	metrics  *Metrics
	handler  http.Handler
	sem      chan struct{}

	mu       sync.Mutex
	httpSrv  *http.Server
	ln       net.Listener
	serveErr chan error
	bgCancel context.CancelFunc
	bgDone   chan struct{}
	closed   bool

	engine   *alerts.Engine
	evalCh   chan []IndexedBatch
	evalDone chan struct{}
	// evaluated is the id of the last batch the rules have seen.
	evaluated atomic.Int64
}

// EvaluatedThrough returns the id of the last batch whose events the alert
// rules have evaluated (0 when no rules are configured or none yet).
func (s *Server) EvaluatedThrough() int64 { return s.evaluated.Load() }

// AlertStateFile keeps the alert engine's windows across restarts.
const AlertStateFile = "alert-state.json"

// LogDir and StoreDir name central's directories in data_dir.
const (
	LogDir = "log"
)

// New opens central's store and log in cfg.Central.DataDir, loads the log
// signer key and enrolls the agents listed in the configuration. Start
// serves it; Shutdown closes everything.
func New(ctx context.Context, cfg *Config, opts Options) (*Server, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Central.Postgres != "" {
		return nil, errors.New("central.postgres: the PostgreSQL store is not part of this build yet; remove the attribute to use the embedded SQLite store in data_dir")
	}
	ns, err := LoadLogSigner(ctx, cfg.LogSigner)
	if err != nil {
		return nil, err
	}
	store, err := OpenSQLite(ctx, cfg.Central.DataDir, logger)
	if err != nil {
		return nil, err
	}
	lg, err := OpenLog(ctx, LogConfig{Dir: filepath.Join(cfg.Central.DataDir, LogDir), Signer: ns,
		BatchMaxAge: opts.LogBatchMaxAge, CheckpointInterval: opts.CheckpointInterval, Logger: logger})
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &Server{cfg: cfg, opts: opts, logger: logger, store: store, log: lg, metrics: NewMetrics()}
	s.metrics.watchIndexBacklog(store.IndexBacklog)
	fail := func(err error) (*Server, error) {
		_ = lg.Close(ctx)
		store.Close()
		return nil, err
	}
	if err := SyncConfigAgents(ctx, store, cfg.Agents); err != nil {
		return fail(err)
	}
	s.ingester, err = NewIngester(IngestConfig{
		Audience: cfg.Central.Audience,
		Limits:   signer.Limits{MaxBody: cfg.Central.MaxRequestBytes, MaxDecompressed: cfg.Central.MaxBodyBytes},
		Logger:   logger, Metrics: s.metrics,
	}, store, lg)
	if err != nil {
		return fail(err)
	}
	s.ingester.onStored = opts.OnStored
	if cfg.Alerts != nil {
		s.engine, err = alerts.New(ctx, cfg.Alerts, cfg.EvalContext, alerts.Options{
			Sink: store, State: alerts.FileState{Path: filepath.Join(cfg.Central.DataDir, AlertStateFile)},
			Logger: logger.With("component", "alerts"), Registerer: s.metrics.Registry,
		})
		if err != nil {
			return fail(fmt.Errorf("alerts: %w", err))
		}
		s.ingester.raise = func(ctx context.Context, a alerts.Alert) {
			if err := s.engine.Raise(ctx, a); err != nil {
				logger.Warn("raise alert", "rule", a.Rule, "err", err)
			}
		}
		// Rules run over events once they are indexed, off the indexer's
		// goroutine (a full channel holds the indexer back).
		s.evalCh, s.evalDone = make(chan []IndexedBatch, 16), make(chan struct{})
		go s.evaluate()
		store.SetIndexHook(func(bs []IndexedBatch) { s.evalCh <- bs })
	}
	if _, err := s.ingester.Reconcile(ctx); err != nil {
		return fail(fmt.Errorf("reconcile log and store: %w", err))
	}
	n := cfg.Central.MaxConcurrent
	if n <= 0 {
		n = DefaultMaxConcurrent
	}
	s.sem = make(chan struct{}, n)
	s.handler = s.routes()
	return s, nil
}

// LoadLogSigner loads the log_signer key (Ed25519: a key file, encrypted
// PEM, or KMS reference) as a checkpoint signer.
func LoadLogSigner(ctx context.Context, ls LogSignerSettings) (*NoteSigner, error) {
	if ls.KeyFile == "" {
		return nil, errors.New("log_signer: key_file is not set")
	}
	key, err := signer.LoadPrivateKey(ctx, ls.KeyFile, nil)
	if errors.Is(err, signer.ErrEncryptedKey) {
		src := signer.PassphraseSource{File: ls.PassphraseFile, Env: ls.PassphraseEnv}
		pass, perr := src.Resolve()
		if perr != nil {
			return nil, fmt.Errorf("log_signer %s: %w", ls.KeyFile, perr)
		}
		key, err = signer.LoadPrivateKey(ctx, ls.KeyFile, pass)
		clear(pass)
	}
	if err != nil {
		return nil, fmt.Errorf("log_signer: %w", err)
	}
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("log_signer %s: checkpoints need an Ed25519 key, this is %T", ls.KeyFile, key.Public())
	}
	origin := ls.Origin
	if origin == "" {
		origin = DefaultLogOrigin
	}
	return NewNoteSignerFunc(origin, pub, func(msg []byte) ([]byte, error) {
		return key.Sign(context.Background(), msg)
	})
}

// SyncConfigAgents enrolls the agents listed in central.hcl and revokes
// config-enrolled agents that are no longer listed.
func SyncConfigAgents(ctx context.Context, store Store, agents []AgentEntry) error {
	listed := map[string]bool{}
	for _, a := range agents {
		pub, err := signer.LoadPublicKey(a.PublicKeyFile)
		if err != nil {
			return fmt.Errorf("agent %q: %w", a.ID, err)
		}
		pem, err := signer.MarshalPublicKeyPEM(pub)
		if err != nil {
			return fmt.Errorf("agent %q: %w", a.ID, err)
		}
		status := AgentActive
		if a.Revoked {
			status = AgentRevoked
		}
		if err := store.PutAgent(ctx, Agent{ID: a.ID, PublicKey: pem, Source: "config", Status: status}); err != nil {
			return err
		}
		listed[a.ID] = true
	}
	all, err := store.Agents(ctx)
	if err != nil {
		return err
	}
	for _, a := range all {
		if a.Source == "config" && !listed[a.ID] && a.Status != AgentRevoked {
			if err := store.SetAgentStatus(ctx, a.ID, AgentRevoked); err != nil {
				return err
			}
		}
	}
	return nil
}

// Store returns the server's store.
func (s *Server) Store() *SQLite { return s.store }

// Log returns the server's transparency log.
func (s *Server) Log() *Log { return s.log }

// Ingester returns the server's ingester.
func (s *Server) Ingester() *Ingester { return s.ingester }

// Handler returns the HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// TLSConfig builds the server TLS configuration: TLS 1.2 or later, and
// client certificates verified against client_ca_file when it is set.
func TLSConfig(t TLSSettings) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls client_ca_file %s: no certificates", t.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if t.RequireClientCert {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Start listens on cfg.Central.Listen and serves the API in the
// background. Plain HTTP is refused unless dev mode is on and the address
// is a loopback one.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpSrv != nil || s.closed {
		return errors.New("central: already started or shut down")
	}
	addr := s.cfg.Central.Listen
	var tc *tls.Config
	if s.cfg.TLS.CertFile != "" {
		var err error
		if tc, err = TLSConfig(s.cfg.TLS); err != nil {
			return err
		}
	} else if !s.cfg.Central.Dev || !isLoopback(addr) {
		return fmt.Errorf("central: refusing plain HTTP on %s: TLS is required outside dev mode on loopback", addr)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("central: listen: %w", err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	rt := s.cfg.Central.ReadTimeout
	if rt <= 0 {
		rt = DefaultReadTimeout
	}
	s.httpSrv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       rt,
		WriteTimeout:      rt + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		TLSConfig:         tc,
	}
	s.ln = ln
	s.serveErr = make(chan error, 1)
	go func() { s.serveErr <- s.httpSrv.Serve(ln) }()
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.bgCancel, s.bgDone = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.watchGaps(bg) })
	wg.Go(func() { s.watchSilence(bg) })
	go func() { wg.Wait(); close(s.bgDone) }()
	s.logger.Info("central listening", "addr", ln.Addr().String(), "tls", tc != nil, "data_dir", s.cfg.Central.DataDir, "log_origin", s.log.Origin())
	return nil
}

// Addr returns the address the server listens on (after Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Wait blocks until the HTTP server stops and returns why.
func (s *Server) Wait() error {
	err := <-s.serveErr
	s.serveErr <- err
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests, waits for those in flight, publishes
// a final checkpoint and closes the store. Safe to call more than once and
// without Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.httpSrv
	s.mu.Unlock()
	var errs []error
	if srv != nil {
		errs = append(errs, srv.Shutdown(ctx))
		s.bgCancel()
		<-s.bgDone
	}
	if s.engine != nil {
		// Index (and hand over) everything committed, let the rules see it
		// and the notifiers deliver, while the store can still record the
		// alerts; then close the store.
		s.store.StopIndexing()
		close(s.evalCh)
		<-s.evalDone
		s.engine.Close()
	}
	errs = append(errs, s.log.Close(ctx), s.store.Close())
	return errors.Join(errs...)
}

// evaluate runs the alert rules over newly indexed events. The engine's
// saved state carries the id of the last batch evaluated: at start it
// first evaluates what was indexed after that (batches indexed before a
// crash, or by the indexer before the hook was set), then follows the
// indexer. A first start with rules begins at the current index, so
// existing history does not fire.
func (s *Server) evaluate() {
	defer close(s.evalDone)
	ctx := context.Background()
	mark, ok := s.engine.Through()
	through, err := s.store.IndexedThrough(ctx)
	if err != nil {
		s.logger.Error("alert rules: read index watermark", "err", err)
	}
	if !ok {
		mark = through
		if err := s.engine.EvaluateThrough(ctx, nil, mark); err != nil {
			s.logger.Warn("alert rules: save watermark", "err", err)
		}
	}
	for mark < through {
		bs, err := s.store.IndexedBatchesAfter(ctx, mark, through, 64)
		if err != nil || len(bs) == 0 {
			s.logger.Error("alert rules: catch up after restart", "after_batch", mark, "err", err)
			break
		}
		s.evaluateBatches(ctx, bs)
		mark = bs[len(bs)-1].BatchID
	}
	s.evaluated.Store(mark)
	for bs := range s.evalCh {
		// Skip what the catch-up already evaluated.
		for len(bs) > 0 && bs[0].BatchID <= mark {
			bs = bs[1:]
		}
		if len(bs) == 0 {
			continue
		}
		s.evaluateBatches(ctx, bs)
		mark = bs[len(bs)-1].BatchID
	}
}

func (s *Server) evaluateBatches(ctx context.Context, bs []IndexedBatch) {
	n := 0
	for _, b := range bs {
		n += len(b.Events)
	}
	evs := make([]alerts.Stored, 0, n)
	for _, b := range bs {
		for _, se := range b.Events {
			if se.Action == "" && strings.HasPrefix(se.EventID, "unparsed:") {
				continue // counted at ingest
			}
			// The engine decodes the JSON only for rules that need it.
			st := alerts.Stored{ID: se.EventID, Time: se.Time, LogIndex: int64(b.LogIndex), JSON: se.JSON,
				Fields: alerts.Fields{Action: se.Action, Outcome: se.Outcome, Actor: se.Actor,
					User: se.User, Group: se.Group, Host: se.Host, System: se.System}}
			if nm := se.names; nm != nil {
				st.Fields.Actor, st.Fields.User, st.Fields.Group = nm.actor, nm.user, nm.group
				st.NamesExact = true
			}
			evs = append(evs, st)
		}
	}
	last := bs[len(bs)-1].BatchID
	if err := s.engine.EvaluateStored(ctx, evs, last); err != nil {
		s.logger.Warn("evaluate alert rules", "err", err)
	}
	s.evaluated.Store(last)
}

// watchGaps raises an alert for each chain gap that stays open longer
// than gap_timeout.
func (s *Server) watchGaps(ctx context.Context) {
	timeout := s.cfg.Central.GapTimeout
	if timeout <= 0 {
		timeout = DefaultGapTimeout
	}
	tick := time.NewTicker(min(timeout/4, time.Minute))
	defer tick.Stop()
	alerted := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		streams, err := s.store.Streams(ctx, "")
		if err != nil {
			continue
		}
		for _, st := range streams {
			key := st.AgentID + "/" + st.StreamID
			if st.Status != ChainGap || time.Since(st.StatusSince) < timeout || alerted[key].Equal(st.StatusSince) {
				continue
			}
			alerted[key] = st.StatusSince
			if seen, err := s.store.HasAlertSince(ctx, "gap", st.AgentID, st.StreamID, st.StatusSince); err != nil || seen {
				continue // raised before a restart
			}
			msg := fmt.Sprintf("agent %s stream %s: %s since %s (possible truncation)", st.AgentID, st.StreamID, st.StatusDetail, st.StatusSince.Format(time.RFC3339))
			if err := s.store.AddEvidence(ctx, Evidence{}, Alert{Kind: "gap", Severity: "high", AgentID: st.AgentID, StreamID: st.StreamID, Message: msg}); err == nil {
				s.metrics.alert("gap")
				s.logger.Warn("alert", "kind", "gap", "agent", st.AgentID, "stream", st.StreamID, "detail", st.StatusDetail)
				s.ingester.notify(ctx, alerts.BuiltinGap, "high", st.AgentID, st.StreamID, uint64(max(st.LastSeq, 0)), msg)
			}
		}
	}
}
