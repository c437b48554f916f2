package central

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	// 6: the derived index moved to its own files (EventsFile,
	// EntitlementsFile), written in parallel with batch commits; the
	// indexer rebuilds them from the stored bodies.
	`
DROP TABLE events;
DROP TABLE entitlement_history;
DROP TABLE entitlements;
DROP TABLE index_state;
`,
}

// SQLite is the embedded Store: the store file (StoreFile) and the two
// files of the derived index (EventsFile, EntitlementsFile), in WAL mode.
// Writes to the store file go through a single writer goroutine that
// commits queued writes together (group commit), each durably
// (synchronous=FULL). The index files have a writer connection each, used
// by the indexer's two stages (see sqlite_index.go). A write function may
// run more than once (after another write in its group failed), so it must
// not keep state across runs except through its transaction.
type SQLite struct {
	db     *sql.DB // readers
	w      *sql.DB // the one writer connection
	writes chan *writeReq
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	log    *slog.Logger
	bodies bodyCache

	// The derived index: events and entitlements.
	ev, ent *indexDB

	// The indexer: batches are committed with their body; their events
	// are inserted into the events file afterwards, in larger
	// transactions, and their entitlement changes into the entitlements
	// file by a second stage (jobs), so that acknowledging a batch never
	// waits for index maintenance. pending holds the events the ingest
	// path already parsed; after a restart the indexer parses bodies
	// itself.
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
	// next is the last batch the events stage handed on (its own).
	next int64
	jobs chan indexJob
	// Multi-row inserts of the index stages.
	insEvents, insPostings, insGrants *multiInsert
	// postingsAlways is the number of postings entries up to which a
	// query term is read from its postings (tests lower it).
	postingsAlways int
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
	// The store file holds batches (appended) and small tables; the large
	// page caches are the index files'.
	w, db, err := openDB(ctx, path, migrations, 0, "synchronous(FULL)", "foreign_keys(ON)", "cache_size(-32768)",
		// Checkpoint less often (64 MiB of WAL): hot pages rewritten by
		// many commits are then copied back to the database once.
		"wal_autocheckpoint(16384)")
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &SQLite{db: db, w: w, writes: make(chan *writeReq, 1024), stop: make(chan struct{}), done: make(chan struct{}), log: logger,
		pending: map[int64][]StoredEvent{}, indexedCh: make(chan struct{}), kick: make(chan struct{}, 1),
		stopIndex: make(chan struct{}), indexDone: make(chan struct{}), jobs: make(chan indexJob, 1), postingsAlways: postingsAlways}
	if err := s.openIndex(ctx, dir, index); err != nil {
		s.closeIndex()
		db.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	go s.writer()
	if index {
		s.kick <- struct{}{} // index what a restart left at once
		runInBackground(s.log, "index events", s.indexer)
		runInBackground(s.log, "index entitlements", s.entitler)
	} else {
		close(s.indexDone)
	}
	return s, nil
}

// openDB opens one database file in WAL mode with the given pragmas: its
// one writer connection (migrated) and a pool of readers. A new file gets
// pages of pageSize bytes (0: SQLite's default).
func openDB(ctx context.Context, path string, migs []string, pageSize int, pragmas ...string) (w, db *sql.DB, err error) {
	q := url.Values{}
	for _, p := range append([]string{"busy_timeout(10000)", "temp_store(MEMORY)"}, pragmas...) {
		q.Add("_pragma", p)
	}
	dsn := "file:" + path + "?" + q.Encode()
	if w, err = sql.Open("sqlite", dsn+"&_txlock=immediate"); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	// The page size must be set before the file turns to WAL mode (which
	// is then kept in the file); it is ignored for an existing file.
	var setup []string
	if pageSize > 0 {
		setup = append(setup, fmt.Sprintf("PRAGMA page_size = %d", pageSize))
	}
	for _, p := range append(setup, "PRAGMA journal_mode = WAL") {
		if _, err := w.ExecContext(ctx, p); err != nil {
			w.Close()
			return nil, nil, fmt.Errorf("%s: %s: %w", path, p, err)
		}
	}
	if err := migrate(ctx, w, migs); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if db, err = sql.Open("sqlite", dsn+"&_pragma=query_only(ON)"); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	return w, db, nil
}

func migrate(ctx context.Context, db *sql.DB, migrations []string) error {
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

// writer runs queued writes, several per transaction (commitGroup).
func (s *SQLite) writer() {
	defer close(s.done)
	for {
		var first *writeReq
		select {
		case first = <-s.writes:
		case <-s.stop:
			return
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

func (s *SQLite) commitGroup(group []*writeReq) {
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
	if s.readOnly {
		return errors.New("store opened read-only")
	}
	r := &writeReq{fn: fn, err: make(chan error, 1)}
	select {
	case s.writes <- r:
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
		err = errors.Join(s.closeIndex(), s.db.Close(), s.w.Close())
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

// MaxBatchID returns the id of the newest stored batch (0: none).
func (s *SQLite) MaxBatchID(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM batches`).Scan(&n)
	return n, err
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
	// The batch's stored events are one range of rows (none when every
	// event was stored before, by an earlier batch).
	out, err := queryEventRows(ctx, s.ev.db, `SELECT `+eventCols+` FROM events
		WHERE id >= (SELECT first_row FROM batch_rows WHERE batch_id = ?1)
		AND id < (SELECT first_row + rows FROM batch_rows WHERE batch_id = ?1) ORDER BY id`, batchID)
	if err != nil {
		return nil, fmt.Errorf("batch %d events: %w", batchID, err)
	}
	return out, s.fillJSON(ctx, out)
}

// EventByID returns the stored event with the given event id.
func (s *SQLite) EventByID(ctx context.Context, id string) (StoredEvent, error) {
	e, err := scanEvent(s.ev.db.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id = ?`, id).Scan)
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
	span := timeSpan{from: math.MinInt64, until: math.MaxInt64, afterT: math.MinInt64}
	if !q.Since.IsZero() {
		span.from = q.Since.UnixNano()
		where = append(where, "time >= ?")
		args = append(args, span.from)
	}
	if !q.Until.IsZero() {
		span.until = q.Until.UnixNano()
		where = append(where, "time < ?")
		args = append(args, span.until)
	}
	if q.After != "" {
		t, id, err := parseCursor(q.After)
		if err != nil {
			return EventPage{}, err
		}
		span.afterT, span.afterID = t, id
		where = append(where, "(time > ? OR (time = ? AND id > ?))")
		args = append(args, t, t, id)
	}
	limit := q.Limit
	if limit <= 0 || limit > MaxQueryLimit {
		limit = MaxQueryLimit
	}
	var page EventPage
	ids, usePostings, err := s.postingsCandidates(ctx, q.terms(), span)
	if err != nil {
		return EventPage{}, fmt.Errorf("query events: %w", err)
	}
	if usePostings {
		page.Events, err = s.fetchCandidates(ctx, ids, where, args, limit+1)
	} else {
		page.Events, err = s.scanByTime(ctx, where, args, limit+1)
	}
	if err != nil {
		return EventPage{}, fmt.Errorf("query events: %w", err)
	}
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

// scanByTime returns up to n events matching where, in (time, row id)
// order, read in time order.
func (s *SQLite) scanByTime(ctx context.Context, where []string, args []any, n int) ([]StoredEvent, error) {
	// Without statistics, SQLite would rather scan the table and sort it
	// than walk the time index when a column is compared for equality.
	sqlq := `SELECT ` + eventCols + ` FROM events INDEXED BY events_time_id`
	if len(where) > 0 {
		sqlq += " WHERE " + strings.Join(where, " AND ")
	}
	sqlq += " ORDER BY time, id LIMIT ?"
	return queryEventRows(ctx, s.ev.db, sqlq, append(args, n)...)
}

// rowQuerier is a *sql.DB or *sql.Tx.
type rowQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryEventRows runs a query selecting eventCols and scans its rows.
func queryEventRows(ctx context.Context, db rowQuerier, sqlq string, args ...any) ([]StoredEvent, error) {
	rows, err := db.QueryContext(ctx, sqlq, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredEvent
	for rows.Next() {
		e, err := scanEvent(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
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
