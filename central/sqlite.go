package central

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/signer"
)

// StoreFile is the SQLite database file in data_dir.
const StoreFile = "central.db"

// maxGroupCommit bounds how many queued writes share one transaction.
const maxGroupCommit = 64

// migrations are applied in order; each entry's index+1 is its version.
// Never edit a released migration: append a new one.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE agents (
	id          TEXT PRIMARY KEY,
	public_key  BLOB NOT NULL,
	source      TEXT NOT NULL,
	status      TEXT NOT NULL,
	hostname    TEXT NOT NULL DEFAULT '',
	enrolled_at INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE streams (
	agent_id        TEXT NOT NULL,
	stream_id       TEXT NOT NULL,
	last_seq        INTEGER NOT NULL DEFAULT -1,
	state           BLOB,
	status          TEXT NOT NULL DEFAULT 'ok',
	status_detail   TEXT NOT NULL DEFAULT '',
	status_since    INTEGER NOT NULL DEFAULT 0,
	last_batch_at   INTEGER NOT NULL DEFAULT 0,
	last_event_time INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (agent_id, stream_id)
);
CREATE TABLE batches (
	id          INTEGER PRIMARY KEY,
	agent_id    TEXT NOT NULL,
	stream_id   TEXT NOT NULL,
	seq         INTEGER NOT NULL,
	log_index   INTEGER NOT NULL UNIQUE,
	header_hash BLOB NOT NULL,
	record      BLOB NOT NULL,
	envelope    BLOB NOT NULL,
	body        BLOB,
	encoding    TEXT NOT NULL,
	events      INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	UNIQUE (agent_id, stream_id, seq)
);
CREATE TABLE events (
	id         INTEGER PRIMARY KEY,
	event_id   TEXT NOT NULL,
	batch_id   INTEGER NOT NULL REFERENCES batches(id),
	ord        INTEGER NOT NULL,
	time       INTEGER NOT NULL,
	action     TEXT NOT NULL,
	outcome    TEXT NOT NULL,
	actor      TEXT NOT NULL,
	user_name  TEXT NOT NULL,
	group_name TEXT NOT NULL,
	privileges TEXT NOT NULL,
	system     TEXT NOT NULL,
	host       TEXT NOT NULL
);
-- Unique by (time, id), not id alone: an id index is random-keyed and
-- costs a page write per event, while time keeps inserts local. A
-- source's re-read event has the same id and time.
CREATE UNIQUE INDEX events_time_id ON events (time, event_id);
CREATE INDEX events_batch  ON events (batch_id, ord);
CREATE INDEX events_actor  ON events (actor, time);
CREATE INDEX events_user   ON events (user_name, time);
CREATE INDEX events_group  ON events (group_name, time);
CREATE INDEX events_action ON events (action, time);
CREATE INDEX events_host   ON events (host, time);
CREATE TABLE evidence (
	id             INTEGER PRIMARY KEY,
	kind           TEXT NOT NULL,
	agent_id       TEXT NOT NULL,
	stream_id      TEXT NOT NULL,
	seq            INTEGER NOT NULL,
	reason         TEXT NOT NULL,
	envelope       BLOB,
	body           BLOB,
	remote_addr    TEXT NOT NULL,
	received_at    INTEGER NOT NULL,
	conflicts_with INTEGER NOT NULL
);
CREATE TABLE alerts (
	id          INTEGER PRIMARY KEY,
	time        INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	severity    TEXT NOT NULL,
	agent_id    TEXT NOT NULL,
	stream_id   TEXT NOT NULL,
	message     TEXT NOT NULL,
	evidence_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE enroll_tokens (
	hash             BLOB PRIMARY KEY,
	uses_left        INTEGER NOT NULL,
	expires_at       INTEGER NOT NULL,
	require_approval INTEGER NOT NULL,
	created_at       INTEGER NOT NULL,
	note             TEXT NOT NULL
);
`,
	// 2: events are indexed after the batch commit, by the indexer; its
	// watermark is the last batch whose events are all indexed. Batches
	// stored by version 1 were indexed in their commit.
	`
CREATE TABLE index_state (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	through_batch INTEGER NOT NULL
);
INSERT INTO index_state (id, through_batch) VALUES (1, COALESCE((SELECT MAX(id) FROM batches), 0));
`,
	// 3: alerts raised by rules (central/alerts) carry their own id, so a
	// re-evaluation after a restart does not record them twice.
	`
ALTER TABLE alerts ADD COLUMN alert_id TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN details TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX alerts_alert_id ON alerts (alert_id) WHERE alert_id <> '';
`,
	// 4: alerts are acknowledged; the entitlement table (who holds what
	// now) and its history are maintained by the indexer in the same
	// transaction as the events; agents' signed status reports.
	`
ALTER TABLE alerts ADD COLUMN acked_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN acked_by TEXT NOT NULL DEFAULT '';
CREATE INDEX alerts_kind ON alerts (kind, id);
CREATE TABLE entitlements (
	system     TEXT NOT NULL,
	scope      TEXT NOT NULL,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	user_name  TEXT NOT NULL,
	since      INTEGER NOT NULL,
	granted_by TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	log_index  INTEGER NOT NULL,
	PRIMARY KEY (system, scope, kind, name, user_name)
);
CREATE INDEX entitlements_user ON entitlements (user_name);
CREATE INDEX entitlements_name ON entitlements (name);
CREATE TABLE entitlement_history (
	id         INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	event_id   TEXT NOT NULL,
	n          INTEGER NOT NULL,
	op         INTEGER NOT NULL,
	system     TEXT NOT NULL,
	scope      TEXT NOT NULL,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	user_name  TEXT NOT NULL,
	granted_by TEXT NOT NULL,
	log_index  INTEGER NOT NULL,
	UNIQUE (time, event_id, n)
);
CREATE INDEX entitlement_history_time ON entitlement_history (time);
CREATE TABLE agent_status (
	agent_id    TEXT PRIMARY KEY,
	created     INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	report      TEXT NOT NULL
);
`,
	// 5: cheaper indexing. Every index costs a b-tree insert per event:
	// events_group served no query (the group filter also matches
	// privileges, so it scans by time), and entitlement_history_time is
	// the prefix of the history's unique key.
	`
DROP INDEX events_group;
DROP INDEX entitlement_history_time;
`,
}

// SQLite is the embedded Store: one database file in WAL mode. Writes go
// through a single writer goroutine that commits queued writes together
// (group commit), each durably (synchronous=FULL); only the indexer's
// transactions, which can be redone from the stored batches, commit with
// synchronous=NORMAL (see commitIndex). A write function may
// run more than once (after another write in its group failed), so it must
// not keep state across runs except through its transaction.
type SQLite struct {
	db     *sql.DB // readers
	w      *sql.DB // the one writer connection
	writes chan *writeReq
	// indexWrites carries the indexer's transactions, served only when no
	// other write waits.
	indexWrites chan *writeReq
	stop        chan struct{}
	done        chan struct{}
	once        sync.Once
	log         *slog.Logger
	bodies      bodyCache

	// The indexer: batches are committed with their body; their events
	// are inserted into the events table (and its indexes) afterwards,
	// in larger transactions, so that acknowledging a batch never waits
	// for index maintenance. pending holds the events the ingest path
	// already parsed; after a restart the indexer parses bodies itself.
	imu       sync.Mutex
	pending   map[int64][]StoredEvent
	indexed   int64         // watermark: batches with id <= indexed are indexed
	indexedCh chan struct{} // closed and replaced when indexed advances
	kick      chan struct{}
	stopIndex chan struct{}
	indexDone chan struct{}
	stopOnce  sync.Once
	readOnly  bool
	// onIndexed is called (from the indexer) after each index transaction.
	onIndexed func([]IndexedBatch)

	// Owned by the writer goroutine: statements prepared once on the
	// writer connection, and whether it is set to synchronous=NORMAL
	// (index transactions) rather than FULL.
	stmts   map[string]*sql.Stmt
	relaxed bool
	// Multi-row inserts of the index transaction.
	insEvents, insHistory, insGrants *multiInsert
}

// StopIndexing indexes every committed batch, calls the index hook for
// them, and stops the indexer; the store stays open for other writes.
// Close calls it.
func (s *SQLite) StopIndexing() {
	s.stopOnce.Do(func() {
		close(s.stopIndex)
		<-s.indexDone
	})
}

// IndexedBatch is one batch whose events were just indexed.
type IndexedBatch struct {
	BatchID  int64
	LogIndex uint64
	Events   []StoredEvent
}

// SetIndexHook sets a function called after each index transaction with
// the batches it indexed, in order. Set it before the first batch is
// committed; it runs on the indexer goroutine and may block it.
func (s *SQLite) SetIndexHook(fn func([]IndexedBatch)) {
	s.imu.Lock()
	defer s.imu.Unlock()
	s.onIndexed = fn
}

type writeReq struct {
	fn  func(*sql.Tx) error
	err chan error
}

// OpenSQLite opens (creating and migrating) the store in dir.
func OpenSQLite(ctx context.Context, dir string, logger *slog.Logger) (*SQLite, error) {
	return openSQLite(ctx, dir, logger, true)
}

// OpenSQLiteTool opens the store for a command-line tool next to a running
// central: it never indexes events (central does), and with readOnly it
// cannot write at all.
func OpenSQLiteTool(ctx context.Context, dir string, readOnly bool) (*SQLite, error) {
	if readOnly {
		if _, err := os.Stat(filepath.Join(dir, StoreFile)); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	s, err := openSQLite(ctx, dir, nil, false)
	if err != nil {
		return nil, err
	}
	if readOnly {
		s.readOnly = true
	}
	return s, nil
}

func openSQLite(ctx context.Context, dir string, logger *slog.Logger, index bool) (*SQLite, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	path := filepath.Join(dir, StoreFile)
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	// A large page cache keeps index pages of a group commit in memory
	// instead of spilling them to the WAL mid-transaction.
	q.Add("_pragma", "cache_size(-131072)")
	q.Add("_pragma", "temp_store(MEMORY)")
	// Checkpoint less often: hot index pages rewritten by many commits
	// are then copied back to the database once.
	q.Add("_pragma", "wal_autocheckpoint(16384)")
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn+"&_pragma=query_only(ON)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	s := &SQLite{db: db, w: w, stmts: map[string]*sql.Stmt{}, writes: make(chan *writeReq, 1024), indexWrites: make(chan *writeReq, 1), stop: make(chan struct{}), done: make(chan struct{}), log: logger,
		pending: map[int64][]StoredEvent{}, indexedCh: make(chan struct{}), kick: make(chan struct{}, 1),
		stopIndex: make(chan struct{}), indexDone: make(chan struct{})}
	if err := w.QueryRowContext(ctx, `SELECT through_batch FROM index_state WHERE id = 1`).Scan(&s.indexed); err != nil {
		db.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: index state: %w", path, err)
	}
	if err := s.prepareIndexStmts(); err != nil {
		s.closeStmts()
		db.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	go s.writer()
	if index {
		go s.indexer()
	} else {
		close(s.indexDone)
	}
	return s, nil
}

func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary knows (%d)", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().Unix()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion returns the applied migration version.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// writer runs queued writes, several per transaction, each in its own
// savepoint so one failing write does not undo the others.
func (s *SQLite) writer() {
	defer close(s.done)
	for {
		var first *writeReq
		// Batch commits (acks wait for them) go before index writes.
		select {
		case first = <-s.writes:
		default:
			select {
			case first = <-s.writes:
			case r := <-s.indexWrites:
				s.commitIndex(r)
				continue
			case <-s.stop:
				return
			}
		}
		group := []*writeReq{first}
	gather:
		for len(group) < maxGroupCommit {
			select {
			case r := <-s.writes:
				group = append(group, r)
			default:
				break gather
			}
		}
		s.commitGroup(group)
	}
}

// commitIndex runs an index transaction with synchronous=NORMAL: its
// commit does not wait for fsync. That is safe because the index is
// derived from the stored batches and index_state is in the same
// database: a crash loses at most the newest index transactions (WAL
// recovery keeps a prefix of the commits) and the indexer redoes them
// from the bodies. The next batch commit (FULL) fsyncs the WAL with
// everything before it.
//
// It also runs without foreign key enforcement: the indexer inserts
// events only for batches it read from the batches table, which never
// loses rows, and without a constraint that can abort a statement
// half-way its multi-row INSERT OR IGNOREs need no statement journal.
// (provtrail verify still counts events without a batch.)
func (s *SQLite) commitIndex(r *writeReq) {
	if !s.relaxed {
		if _, err := s.w.Exec(`PRAGMA synchronous = NORMAL`); err != nil {
			r.err <- fmt.Errorf("store: relax sync for indexing: %w", err)
			return
		}
		s.relaxed = true
		if _, err := s.w.Exec(`PRAGMA foreign_keys = OFF`); err != nil {
			r.err <- fmt.Errorf("store: foreign keys off for indexing: %w", err)
			return
		}
	}
	r.err <- s.runTx([]*writeReq{r})
}

// strict sets the writer connection back to synchronous=FULL and foreign
// key enforcement after index transactions.
func (s *SQLite) strict() error {
	if !s.relaxed {
		return nil
	}
	if _, err := s.w.Exec(`PRAGMA synchronous = FULL`); err != nil {
		return fmt.Errorf("store: restore synchronous=FULL: %w", err)
	}
	if _, err := s.w.Exec(`PRAGMA foreign_keys = ON`); err != nil {
		return fmt.Errorf("store: restore foreign keys: %w", err)
	}
	s.relaxed = false
	return nil
}

func (s *SQLite) commitGroup(group []*writeReq) {
	// Batch commits (and every other write) are durable before they
	// return: never run them relaxed.
	if err := s.strict(); err != nil {
		for _, r := range group {
			r.err <- err
		}
		return
	}
	// Optimistically run the whole group in one transaction. If any write
	// fails, roll back and run each write alone so that one bad write does
	// not fail the others. (Savepoints per write would do the same but cost
	// a statement journal write for every page touched.)
	if err := s.runTx(group); err == nil {
		for _, r := range group {
			r.err <- nil
		}
		return
	} else if len(group) == 1 {
		group[0].err <- err
		return
	}
	for _, r := range group {
		r.err <- s.runTx([]*writeReq{r})
	}
}

func (s *SQLite) runTx(group []*writeReq) error {
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	for _, r := range group {
		if err := r.fn(tx); err != nil {
			return errors.Join(err, tx.Rollback())
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

// write runs fn in the writer's transaction and returns once it is
// committed (or failed).
func (s *SQLite) write(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.writeOn(ctx, s.writes, fn)
}

func (s *SQLite) writeOn(ctx context.Context, ch chan *writeReq, fn func(*sql.Tx) error) error {
	if s.readOnly {
		return errors.New("store opened read-only")
	}
	r := &writeReq{fn: fn, err: make(chan error, 1)}
	select {
	case ch <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stop:
		return errors.New("store closed")
	}
	// Once queued, the write will run; wait for it even if ctx ends, so
	// the caller never mistakes a committed write for a failed one.
	return <-r.err
}

// Close stops the writer and closes the database. Safe to call twice.
func (s *SQLite) Close() error {
	var err error
	s.once.Do(func() {
		// Index what is committed, then stop the writer.
		s.StopIndexing()
		close(s.stop)
		<-s.done
		s.closeStmts()
		// Fail writes that were queued but not taken.
		for {
			select {
			case r := <-s.writes:
				r.err <- errors.New("store closed")
				continue
			default:
			}
			break
		}
		err = errors.Join(s.db.Close(), s.w.Close())
	})
	return err
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Agent returns the enrolled agent id.
func (s *SQLite) Agent(ctx context.Context, id string) (Agent, error) {
	row := s.db.QueryRowContext(ctx, `SELECT id, public_key, source, status, hostname, enrolled_at, last_seen FROM agents WHERE id = ?`, id)
	a, err := scanAgent(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("agent %q: %w", id, ErrNotFound)
	}
	return a, err
}

func scanAgent(scan func(...any) error) (Agent, error) {
	var a Agent
	var status string
	var enrolled, seen int64
	if err := scan(&a.ID, &a.PublicKey, &a.Source, &status, &a.Hostname, &enrolled, &seen); err != nil {
		return Agent{}, err
	}
	a.Status = AgentStatus(status)
	a.EnrolledAt = fromNano(enrolled)
	a.LastSeen = fromNano(seen)
	return a, nil
}

// PutAgent inserts or replaces an agent's key, source, status and hostname
// (keeping its last-seen time).
func (s *SQLite) PutAgent(ctx context.Context, a Agent) error {
	return s.write(ctx, func(tx *sql.Tx) error { return putAgent(tx, a) })
}

func putAgent(tx *sql.Tx, a Agent) error {
	if a.EnrolledAt.IsZero() {
		a.EnrolledAt = time.Now()
	}
	_, err := tx.Exec(`INSERT INTO agents (id, public_key, source, status, hostname, enrolled_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key, source = excluded.source, status = excluded.status, hostname = excluded.hostname`,
		a.ID, a.PublicKey, a.Source, string(a.Status), a.Hostname, unixNano(a.EnrolledAt))
	if err != nil {
		return fmt.Errorf("put agent %q: %w", a.ID, err)
	}
	return nil
}

// SetAgentStatus changes an agent's status.
func (s *SQLite) SetAgentStatus(ctx context.Context, id string, status AgentStatus) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE agents SET status = ? WHERE id = ?`, string(status), id)
		if err != nil {
			return fmt.Errorf("set agent %q status: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("agent %q: %w", id, ErrNotFound)
		}
		return nil
	})
}

// Agents lists all agents by id.
func (s *SQLite) Agents(ctx context.Context) ([]Agent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, public_key, source, status, hostname, enrolled_at, last_seen FROM agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		a, err := scanAgent(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

const streamCols = `agent_id, stream_id, last_seq, state, status, status_detail, status_since, last_batch_at, last_event_time`

func scanStream(scan func(...any) error) (Stream, error) {
	var st Stream
	var status string
	var since, lastBatch, lastEvent int64
	if err := scan(&st.AgentID, &st.StreamID, &st.LastSeq, &st.State, &status, &st.StatusDetail, &since, &lastBatch, &lastEvent); err != nil {
		return Stream{}, err
	}
	st.Status = ChainStatus(status)
	st.StatusSince = fromNano(since)
	st.LastBatchAt = fromNano(lastBatch)
	st.LastEventTime = fromNano(lastEvent)
	return st, nil
}

// Stream returns one stream's state.
func (s *SQLite) Stream(ctx context.Context, agentID, streamID string) (Stream, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+streamCols+` FROM streams WHERE agent_id = ? AND stream_id = ?`, agentID, streamID)
	st, err := scanStream(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Stream{}, fmt.Errorf("stream %s/%s: %w", agentID, streamID, ErrNotFound)
	}
	if err != nil {
		return Stream{}, fmt.Errorf("stream %s/%s: %w", agentID, streamID, err)
	}
	return st, nil
}

// Streams lists an agent's streams (all agents' when agentID is empty).
func (s *SQLite) Streams(ctx context.Context, agentID string) ([]Stream, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+streamCols+` FROM streams WHERE ? = '' OR agent_id = ? ORDER BY agent_id, stream_id`, agentID, agentID)
	if err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	defer rows.Close()
	var out []Stream
	for rows.Next() {
		st, err := scanStream(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("list streams: %w", err)
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// SetStreamStatus records a chain status on a stream.
func (s *SQLite) SetStreamStatus(ctx context.Context, agentID, streamID string, status ChainStatus, detail string) error {
	now := time.Now().UnixNano()
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO streams (agent_id, stream_id, status, status_detail, status_since) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (agent_id, stream_id) DO UPDATE SET
				status_since = CASE WHEN status = excluded.status THEN status_since ELSE excluded.status_since END,
				status = excluded.status, status_detail = excluded.status_detail`,
			agentID, streamID, string(status), detail, now)
		if err != nil {
			return fmt.Errorf("set stream %s/%s status: %w", agentID, streamID, err)
		}
		return nil
	})
}

// CommitBatch writes an accepted batch, its events and the new stream state
// in one transaction.
func (s *SQLite) CommitBatch(ctx context.Context, w *BatchWrite) (CommitResult, error) {
	var res CommitResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		res = CommitResult{}
		b := &w.Batch
		r, err := tx.Exec(`INSERT INTO batches (agent_id, stream_id, seq, log_index, header_hash, record, envelope, body, encoding, events, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.AgentID, b.StreamID, int64(b.Seq), int64(b.LogIndex), b.HeaderHash, b.Record, b.Envelope, b.Body, string(b.Encoding), b.Events, unixNano(b.ReceivedAt))
		if err != nil {
			return fmt.Errorf("insert batch %s/%s/%d: %w", b.AgentID, b.StreamID, b.Seq, err)
		}
		res.BatchID, _ = r.LastInsertId()
		res.EventsStored = len(w.Events)
		st := &w.Stream
		_, err = tx.Exec(`INSERT INTO streams (`+streamCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (agent_id, stream_id) DO UPDATE SET last_seq = excluded.last_seq, state = excluded.state,
				status = excluded.status, status_detail = excluded.status_detail, status_since = excluded.status_since,
				last_batch_at = excluded.last_batch_at, last_event_time = MAX(last_event_time, excluded.last_event_time)`,
			st.AgentID, st.StreamID, st.LastSeq, st.State, string(st.Status), st.StatusDetail, unixNano(st.StatusSince), unixNano(st.LastBatchAt), unixNano(st.LastEventTime))
		if err != nil {
			return fmt.Errorf("update stream %s/%s: %w", st.AgentID, st.StreamID, err)
		}
		if _, err := tx.Exec(`UPDATE agents SET last_seen = MAX(last_seen, ?) WHERE id = ?`, unixNano(b.ReceivedAt), b.AgentID); err != nil {
			return fmt.Errorf("update agent %s last seen: %w", b.AgentID, err)
		}
		return nil
	})
	if err == nil {
		s.imu.Lock()
		s.pending[res.BatchID] = w.Events
		s.imu.Unlock()
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return res, err
}

// IndexBacklog returns how many committed events wait to be indexed.
func (s *SQLite) IndexBacklog() int {
	s.imu.Lock()
	defer s.imu.Unlock()
	n := 0
	for _, evs := range s.pending {
		n += len(evs)
	}
	return n
}

// An index transaction inserts up to maxIndexEvents events: large
// transactions write each hot index page to the WAL once rather than once
// per transaction. When batch commits (which acks wait for) queue behind
// it, it ends at the next batch after indexStepEvents more events.
const (
	maxIndexEvents  = 8192
	indexStepEvents = 1024
)

// indexer inserts committed batches' events into the events table until
// Close, which it answers by indexing everything committed first.
func (s *SQLite) indexer() {
	defer close(s.indexDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		draining := false
		select {
		case <-s.kick:
		case <-tick.C:
		case <-s.stopIndex:
			draining = true
		}
		for {
			n, err := s.indexSome(context.Background())
			if err != nil {
				s.log.Error("index events", "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
		if draining {
			return
		}
	}
}

type indexBatch struct {
	id       int64
	logIndex uint64
	events   []StoredEvent
}

// indexSome indexes the next batches after the watermark and returns how
// many it indexed.
func (s *SQLite) indexSome(ctx context.Context) (int, error) {
	s.imu.Lock()
	from := s.indexed
	s.imu.Unlock()
	rows, err := s.db.QueryContext(ctx, `SELECT id, log_index, events FROM batches WHERE id > ? ORDER BY id LIMIT 256`, from)
	if err != nil {
		return 0, err
	}
	type ref struct {
		id       int64
		logIndex int64
		events   int
	}
	var refs []ref
	for rows.Next() {
		var r ref
		if err := rows.Scan(&r.id, &r.logIndex, &r.events); err != nil {
			rows.Close()
			return 0, err
		}
		refs = append(refs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(refs) == 0 {
		return 0, err
	}
	var todo []indexBatch
	total := 0
	for _, r := range refs {
		if len(todo) > 0 && total+r.events > maxIndexEvents {
			break
		}
		s.imu.Lock()
		evs, ok := s.pending[r.id]
		s.imu.Unlock()
		if !ok {
			// Committed before a restart: parse the stored body.
			if evs, err = s.parseStoredBatch(ctx, r.id); err != nil {
				return 0, err
			}
		}
		todo = append(todo, indexBatch{r.id, uint64(r.logIndex), evs})
		total += r.events
	}
	done := 0
	err = s.writeOn(ctx, s.indexWrites, func(tx *sql.Tx) error {
		done = 0
		for done < len(todo) {
			if done > 0 && len(s.writes) > 0 {
				break // batch commits wait: let them go first
			}
			n, events := 0, 0
			for done+n < len(todo) && (n == 0 || events+len(todo[done+n].events) <= indexStepEvents) {
				events += len(todo[done+n].events)
				n++
			}
			step := todo[done : done+n]
			skipped, err := s.insertEvents(tx, step)
			if err != nil {
				return err
			}
			// An event already stored (from an earlier batch) was
			// applied then; it does not change entitlements again.
			if err := s.applyEntitlements(tx, entitlementChanges(step, skipped)); err != nil {
				return err
			}
			done += n
		}
		_, err := tx.Stmt(s.stmts[sqlIndexState]).Exec(todo[done-1].id)
		return err
	})
	if err != nil {
		return 0, err
	}
	todo = todo[:done]
	last := todo[done-1].id
	s.imu.Lock()
	for _, b := range todo {
		delete(s.pending, b.id)
	}
	s.indexed = last
	close(s.indexedCh)
	s.indexedCh = make(chan struct{})
	hook := s.onIndexed
	s.imu.Unlock()
	if hook != nil {
		out := make([]IndexedBatch, len(todo))
		for i, b := range todo {
			out[i] = IndexedBatch{BatchID: b.id, LogIndex: b.logIndex, Events: b.events}
		}
		hook(out)
	}
	return len(todo), nil
}

func (s *SQLite) parseStoredBatch(ctx context.Context, id int64) ([]StoredEvent, error) {
	var body, hh []byte
	var enc string
	if err := s.db.QueryRowContext(ctx, `SELECT body, encoding, header_hash FROM batches WHERE id = ?`, id).Scan(&body, &enc, &hh); err != nil {
		return nil, fmt.Errorf("batch %d: %w", id, err)
	}
	raw, err := DecodeBody(signer.Encoding(enc), body)
	if err != nil {
		return nil, fmt.Errorf("batch %d body: %w", id, err)
	}
	var digest signer.Digest
	copy(digest[:], hh)
	evs, _ := parseEvents(raw, digest, nil)
	return evs, nil
}

// IndexedThrough returns the id of the last batch whose events are
// indexed (queryable).
func (s *SQLite) IndexedThrough(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT through_batch FROM index_state WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("index state: %w", err)
	}
	return n, nil
}

// WaitIndexed blocks until the batch with the given id is indexed.
func (s *SQLite) WaitIndexed(ctx context.Context, batchID int64) error {
	for {
		s.imu.Lock()
		done, ch := s.indexed >= batchID, s.indexedCh
		s.imu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.indexDone:
			return errors.New("store closed")
		}
	}
}

// MaxBatchID returns the id of the newest stored batch (0: none).
func (s *SQLite) MaxBatchID(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM batches`).Scan(&n)
	return n, err
}

// rowsPerStmt is the most rows one multi-row INSERT carries (at most 12
// parameters each; SQLite allows 32766): per-statement overhead dominates
// single-row inserts.
const rowsPerStmt = 128

// multiInsert is a multi-row INSERT prepared once on the writer
// connection for every power of two of rows up to rowsPerStmt.
type multiInsert struct {
	cols  int
	stmts []*sql.Stmt // stmts[i] inserts 1<<i rows
}

func prepareMulti(db *sql.DB, head, tuple, tail string, cols int) (*multiInsert, error) {
	m := &multiInsert{cols: cols}
	for n := 1; n <= rowsPerStmt; n *= 2 {
		var sb strings.Builder
		sb.WriteString(head)
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(tuple)
		}
		sb.WriteString(tail)
		st, err := db.Prepare(sb.String())
		if err != nil {
			m.close()
			return nil, fmt.Errorf("prepare %s: %w", head, err)
		}
		m.stmts = append(m.stmts, st)
	}
	return m, nil
}

func (m *multiInsert) close() {
	if m == nil {
		return
	}
	for _, st := range m.stmts {
		st.Close()
	}
}

// exec inserts the rows whose parameters are args (cols per row), calling
// done (if not nil) with each statement's first row, row count and rows
// affected.
func (m *multiInsert) exec(tx *sql.Tx, args []any, done func(first, n int, affected int64) error) error {
	rows := len(args) / m.cols
	for first := 0; first < rows; {
		i := len(m.stmts) - 1
		for 1<<i > rows-first {
			i--
		}
		n := 1 << i
		r, err := tx.Stmt(m.stmts[i]).Exec(args[first*m.cols : (first+n)*m.cols]...)
		if err != nil {
			return err
		}
		if done != nil {
			affected, _ := r.RowsAffected()
			if err := done(first, n, affected); err != nil {
				return err
			}
		}
		first += n
	}
	return nil
}

// Statements of the index transaction that are not multi-row inserts.
const (
	sqlEventAt    = `SELECT batch_id, ord FROM events WHERE time = ? AND event_id = ?`
	sqlIndexState = `UPDATE index_state SET through_batch = ? WHERE id = 1`
	sqlRevoke     = `DELETE FROM entitlements WHERE system = ? AND scope = ? AND kind = ? AND name = ? AND user_name = ?`
	sqlRevokeUser = `DELETE FROM entitlements WHERE system = ? AND scope = ? AND user_name = ?`
	sqlRevokeName = `DELETE FROM entitlements WHERE system = ? AND scope = ? AND kind = ? AND name = ?`
	// OR IGNORE: an event whose (time, id) is stored is not stored
	// again (the other constraints are NOT NULLs, never violated).
	insertEventsHead = `INSERT OR IGNORE INTO events (event_id, batch_id, ord, time, action, outcome, actor, user_name, group_name, privileges, system, host) VALUES `
)

// prepareIndexStmts prepares the index transaction's statements on the
// writer connection (before the writer starts: while a transaction holds
// the one connection, nothing else can prepare on it).
func (s *SQLite) prepareIndexStmts() error {
	var err error
	if s.insEvents, err = prepareMulti(s.w, insertEventsHead, "(?,?,?,?,?,?,?,?,?,?,?,?)", "", 12); err != nil {
		return err
	}
	if s.insHistory, err = prepareMulti(s.w, `INSERT OR IGNORE INTO entitlement_history (time, event_id, n, op, system, scope, kind, name, user_name, granted_by, log_index) VALUES `,
		"(?,?,?,?,?,?,?,?,?,?,?)", "", 11); err != nil {
		return err
	}
	if s.insGrants, err = prepareMulti(s.w, `INSERT OR IGNORE INTO entitlements (system, scope, kind, name, user_name, since, granted_by, event_id, log_index) VALUES `,
		"(?,?,?,?,?,?,?,?,?)", "", 9); err != nil {
		return err
	}
	for _, q := range []string{sqlEventAt, sqlIndexState, sqlRevoke, sqlRevokeUser, sqlRevokeName} {
		st, err := s.w.Prepare(q)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", q, err)
		}
		s.stmts[q] = st
	}
	return nil
}

func (s *SQLite) closeStmts() {
	for _, st := range s.stmts {
		st.Close()
	}
	s.insEvents.close()
	s.insHistory.close()
	s.insGrants.close()
}

// evKey names one event of a batch.
type evKey struct {
	batch int64
	ord   int
}

// insertEvents inserts the batches' events and returns those it did not
// insert because their (time, id) was already stored (nil: none).
func (s *SQLite) insertEvents(tx *sql.Tx, todo []indexBatch) (map[evKey]bool, error) {
	var all []*StoredEvent
	var ids []int64
	args := make([]any, 0, 12*indexStepEvents)
	for _, b := range todo {
		for i := range b.events {
			e := &b.events[i]
			all, ids = append(all, e), append(ids, b.id)
			args = append(args, e.EventID, b.id, e.Ord, unixNano(e.Time), e.Action, e.Outcome, e.Actor, e.User, e.Group, e.Privileges, e.System, e.Host)
		}
	}
	var skipped map[evKey]bool
	err := s.insEvents.exec(tx, args, func(first, n int, affected int64) error {
		if affected == int64(n) {
			return nil
		}
		// Some were already stored: find which, by who holds their key.
		at := tx.Stmt(s.stmts[sqlEventAt])
		for i := first; i < first+n; i++ {
			e := all[i]
			var batch int64
			var ord int
			if err := at.QueryRow(unixNano(e.Time), e.EventID).Scan(&batch, &ord); err != nil {
				return fmt.Errorf("event %s: %w", e.EventID, err)
			}
			if batch != ids[i] || ord != e.Ord {
				if skipped == nil {
					skipped = map[evKey]bool{}
				}
				skipped[evKey{ids[i], e.Ord}] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	return skipped, nil
}

const batchCols = `id, agent_id, stream_id, seq, log_index, header_hash, record, envelope, body, encoding, events, received_at`

func scanBatch(scan func(...any) error) (Batch, error) {
	var b Batch
	var seq, idx, recv int64
	var enc string
	if err := scan(&b.ID, &b.AgentID, &b.StreamID, &seq, &idx, &b.HeaderHash, &b.Record, &b.Envelope, &b.Body, &enc, &b.Events, &recv); err != nil {
		return Batch{}, err
	}
	b.Encoding = signer.Encoding(enc)
	b.Seq, b.LogIndex, b.ReceivedAt = uint64(seq), uint64(idx), fromNano(recv)
	return b, nil
}

// BatchBySeq returns the accepted batch at seq in a stream.
func (s *SQLite) BatchBySeq(ctx context.Context, agentID, streamID string, seq uint64) (Batch, error) {
	b, err := scanBatch(s.db.QueryRowContext(ctx, `SELECT `+batchCols+` FROM batches WHERE agent_id = ? AND stream_id = ? AND seq = ?`, agentID, streamID, int64(seq)).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("batch %s/%s/%d: %w", agentID, streamID, seq, ErrNotFound)
	}
	return b, err
}

// BatchByLogIndex returns the batch whose header is log leaf index.
func (s *SQLite) BatchByLogIndex(ctx context.Context, index uint64) (Batch, error) {
	b, err := scanBatch(s.db.QueryRowContext(ctx, `SELECT `+batchCols+` FROM batches WHERE log_index = ?`, int64(index)).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("batch at log index %d: %w", index, ErrNotFound)
	}
	return b, err
}

// ForEachBatch calls fn for every batch in log-index order.
func (s *SQLite) ForEachBatch(ctx context.Context, fn func(Batch) error) error {
	const page = 256
	after := int64(-1)
	for {
		rows, err := s.db.QueryContext(ctx, `SELECT `+batchCols+` FROM batches WHERE log_index > ? ORDER BY log_index LIMIT ?`, after, page)
		if err != nil {
			return fmt.Errorf("scan batches: %w", err)
		}
		var bs []Batch
		for rows.Next() {
			b, err := scanBatch(rows.Scan)
			if err != nil {
				rows.Close()
				return fmt.Errorf("scan batches: %w", err)
			}
			bs = append(bs, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("scan batches: %w", err)
		}
		for _, b := range bs {
			if err := fn(b); err != nil {
				return err
			}
			after = int64(b.LogIndex)
		}
		if len(bs) < page {
			return nil
		}
	}
}

const eventCols = `id, batch_id, ord, event_id, time, action, outcome, actor, user_name, group_name, privileges, system, host`

func scanEvent(scan func(...any) error) (StoredEvent, error) {
	var e StoredEvent
	var t int64
	if err := scan(&e.RowID, &e.BatchID, &e.Ord, &e.EventID, &t, &e.Action, &e.Outcome, &e.Actor, &e.User, &e.Group, &e.Privileges, &e.System, &e.Host); err != nil {
		return StoredEvent{}, err
	}
	e.Time = fromNano(t)
	return e, nil
}

// BatchEvents returns a batch's stored events in body order.
func (s *SQLite) BatchEvents(ctx context.Context, batchID int64) ([]StoredEvent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventCols+` FROM events WHERE batch_id = ? ORDER BY ord`, batchID)
	if err != nil {
		return nil, fmt.Errorf("batch %d events: %w", batchID, err)
	}
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		e, err := scanEvent(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("batch %d events: %w", batchID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("batch %d events: %w", batchID, err)
	}
	rows.Close()
	return out, s.fillJSON(ctx, out)
}

// EventByID returns the stored event with the given event id.
func (s *SQLite) EventByID(ctx context.Context, id string) (StoredEvent, error) {
	e, err := scanEvent(s.db.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id = ?`, id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredEvent{}, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return StoredEvent{}, err
	}
	evs := []StoredEvent{e}
	err = s.fillJSON(ctx, evs)
	return evs[0], err
}

// MaxLogIndex returns the highest log index of a stored batch, -1 if none.
func (s *SQLite) MaxLogIndex(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(log_index), -1) FROM batches`).Scan(&n); err != nil {
		return 0, fmt.Errorf("max log index: %w", err)
	}
	return n, nil
}

// AddEvidence keeps a rejected batch as evidence and raises alert about it
// in one transaction.
func (s *SQLite) AddEvidence(ctx context.Context, ev Evidence, alert Alert) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		var evID int64
		if ev.Kind != "" {
			r, err := tx.Exec(`INSERT INTO evidence (kind, agent_id, stream_id, seq, reason, envelope, body, remote_addr, received_at, conflicts_with) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				ev.Kind, ev.AgentID, ev.StreamID, int64(ev.Seq), ev.Reason, ev.Envelope, ev.Body, ev.RemoteAddr, unixNano(ev.ReceivedAt), ev.ConflictsWith)
			if err != nil {
				return fmt.Errorf("insert evidence: %w", err)
			}
			evID, _ = r.LastInsertId()
		}
		if alert.Time.IsZero() {
			alert.Time = time.Now()
		}
		_, err := tx.Exec(`INSERT INTO alerts (time, kind, severity, agent_id, stream_id, message, evidence_id) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			unixNano(alert.Time), alert.Kind, alert.Severity, alert.AgentID, alert.StreamID, alert.Message, evID)
		if err != nil {
			return fmt.Errorf("insert alert: %w", err)
		}
		return nil
	})
}

// SaveAlert records an alert raised by the rule engine (alerts.Sink). An
// alert with an id already recorded is not recorded again; alerts central
// already recorded with their evidence (Details["recorded"]) are skipped.
func (s *SQLite) SaveAlert(ctx context.Context, a alerts.Alert) error {
	if a.Details["recorded"] != "" {
		return nil
	}
	details, err := json.Marshal(a)
	if err != nil {
		return err
	}
	t := a.Time
	if t.IsZero() {
		t = time.Now()
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT OR IGNORE INTO alerts (time, kind, severity, agent_id, stream_id, message, evidence_id, alert_id, details) VALUES (?, ?, ?, ?, '', ?, 0, ?, ?)`,
			unixNano(t), a.Rule, a.Severity, a.Agent, a.Summary, a.ID, string(details))
		if err != nil {
			return fmt.Errorf("save alert %s: %w", a.ID, err)
		}
		return nil
	})
}

// Alerts returns the newest alerts first.
func (s *SQLite) Alerts(ctx context.Context, limit int) ([]Alert, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, kind, severity, agent_id, stream_id, message, evidence_id FROM alerts ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		var t int64
		if err := rows.Scan(&a.ID, &t, &a.Kind, &a.Severity, &a.AgentID, &a.StreamID, &a.Message, &a.EvidenceID); err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		a.Time = fromNano(t)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Evidence returns one evidence record.
func (s *SQLite) Evidence(ctx context.Context, id int64) (Evidence, error) {
	var ev Evidence
	var seq, recv int64
	err := s.db.QueryRowContext(ctx, `SELECT id, kind, agent_id, stream_id, seq, reason, envelope, body, remote_addr, received_at, conflicts_with FROM evidence WHERE id = ?`, id).
		Scan(&ev.ID, &ev.Kind, &ev.AgentID, &ev.StreamID, &seq, &ev.Reason, &ev.Envelope, &ev.Body, &ev.RemoteAddr, &recv, &ev.ConflictsWith)
	if errors.Is(err, sql.ErrNoRows) {
		return Evidence{}, fmt.Errorf("evidence %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Evidence{}, fmt.Errorf("evidence %d: %w", id, err)
	}
	ev.Seq, ev.ReceivedAt = uint64(seq), fromNano(recv)
	return ev, nil
}

// MaxQueryLimit bounds one page of query results.
const MaxQueryLimit = 1000

// QueryEvents returns one page of matching events, oldest first.
func (s *SQLite) QueryEvents(ctx context.Context, q EventQuery) (EventPage, error) {
	var where []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			where = append(where, col+" = ?")
			args = append(args, v)
		}
	}
	eq("actor", q.Actor)
	eq("user_name", q.User)
	eq("action", q.Action)
	eq("system", q.System)
	eq("host", q.Host)
	if q.Group != "" {
		// A group or a privilege: memberships name the group, grants the
		// privilege (privileges are newline-joined).
		where = append(where, "(group_name = ? OR ('\n' || privileges || '\n') LIKE ? ESCAPE '\\')")
		args = append(args, q.Group, "%\n"+likeEscape(q.Group)+"\n%")
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, q.Until.UnixNano())
	}
	if q.After != "" {
		t, id, err := parseCursor(q.After)
		if err != nil {
			return EventPage{}, err
		}
		where = append(where, "(time > ? OR (time = ? AND id > ?))")
		args = append(args, t, t, id)
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxQueryLimit {
		limit = MaxQueryLimit
	}
	sqlq := `SELECT ` + eventCols + ` FROM events`
	if len(where) > 0 {
		sqlq += " WHERE " + strings.Join(where, " AND ")
	}
	sqlq += " ORDER BY time, id LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, sqlq, args...)
	if err != nil {
		return EventPage{}, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var page EventPage
	for rows.Next() {
		e, err := scanEvent(rows.Scan)
		if err != nil {
			return EventPage{}, fmt.Errorf("query events: %w", err)
		}
		page.Events = append(page.Events, e)
	}
	if err := rows.Err(); err != nil {
		return EventPage{}, fmt.Errorf("query events: %w", err)
	}
	rows.Close()
	if err := s.fillJSON(ctx, page.Events); err != nil {
		return EventPage{}, err
	}
	if len(page.Events) > limit {
		page.Events = page.Events[:limit]
		last := page.Events[limit-1]
		page.Next = fmt.Sprintf("%d.%d", unixNano(last.Time), last.RowID)
	}
	return page, nil
}

func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

func parseCursor(c string) (int64, int64, error) {
	a, b, ok := strings.Cut(c, ".")
	t, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("invalid page cursor %q", c)
	}
	return t, id, nil
}

// CreateToken stores an enrollment token (by hash).
func (s *SQLite) CreateToken(ctx context.Context, t EnrollToken) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO enroll_tokens (hash, uses_left, expires_at, require_approval, created_at, note) VALUES (?, ?, ?, ?, ?, ?)`,
			t.Hash, t.UsesLeft, unixNano(t.ExpiresAt), t.RequireApproval, unixNano(t.CreatedAt), t.Note)
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		return nil
	})
}

// ErrTokenInvalid is returned for an unknown, used-up or expired token.
var ErrTokenInvalid = errors.New("enrollment token unknown, used up or expired")

// ErrAgentExists is returned when enrolling an agent id that is already
// enrolled with a different key.
var ErrAgentExists = errors.New("agent id already enrolled with another key")

// UseToken consumes one use of a token and records the agent.
func (s *SQLite) UseToken(ctx context.Context, hash []byte, now time.Time, a Agent) (EnrollToken, error) {
	var tok EnrollToken
	err := s.write(ctx, func(tx *sql.Tx) error {
		var exp, created int64
		err := tx.QueryRow(`SELECT hash, uses_left, expires_at, require_approval, created_at, note FROM enroll_tokens WHERE hash = ?`, hash).
			Scan(&tok.Hash, &tok.UsesLeft, &exp, &tok.RequireApproval, &created, &tok.Note)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrTokenInvalid
		}
		if err != nil {
			return fmt.Errorf("use token: %w", err)
		}
		tok.ExpiresAt, tok.CreatedAt = fromNano(exp), fromNano(created)
		if tok.UsesLeft <= 0 || (!tok.ExpiresAt.IsZero() && !now.Before(tok.ExpiresAt)) {
			return ErrTokenInvalid
		}
		var existing []byte
		err = tx.QueryRow(`SELECT public_key FROM agents WHERE id = ?`, a.ID).Scan(&existing)
		switch {
		case err == nil && string(existing) != string(a.PublicKey):
			return fmt.Errorf("enroll %q: %w", a.ID, ErrAgentExists)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("use token: %w", err)
		}
		if _, err := tx.Exec(`UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE hash = ?`, hash); err != nil {
			return fmt.Errorf("use token: %w", err)
		}
		tok.UsesLeft--
		a.Status = AgentActive
		if tok.RequireApproval {
			a.Status = AgentPending
		}
		return putAgent(tx, a)
	})
	return tok, err
}
