package central

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/provtrail/provtrail/signer"
)

// The derived index lives in two files next to StoreFile, each with its
// own writer connection: the indexer inserts events into EventsFile while
// the entitlement stage applies the previous events' entitlement changes
// to EntitlementsFile, on the other core, and neither waits for nor
// delays batch commits (acks) in StoreFile. Both are derived from the
// stored batch bodies: each file keeps the watermark of the batches it
// holds (index_state) in the same transactions as its rows, and a missing
// or stale file is rebuilt from the bodies.
const (
	EventsFile       = "events.db"
	EntitlementsFile = "entitlements.db"
)

// eventsMigrations version EventsFile (like migrations for StoreFile).
var eventsMigrations = []string{
	// 1: the events table and the row id range of each batch's stored
	// events (batch_rows), so no index by batch is maintained. Row ids
	// are assigned by SQLite, in index order: an INSERT that names the
	// row id may abort half-way (a non-integer id), so SQLite would keep
	// a statement journal for each multi-row INSERT, copying every page
	// it touches (about a fifth of the events stage's CPU), and look each
	// id up.
	`
CREATE TABLE events (
	id         INTEGER PRIMARY KEY,
	batch_id   INTEGER NOT NULL,
	ord        INTEGER NOT NULL,
	event_id   TEXT NOT NULL,
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
-- source's re-read event has the same id and time. (No index by group:
-- the group filter also matches privileges, so it scans by time.)
CREATE UNIQUE INDEX events_time_id ON events (time, event_id);
CREATE INDEX events_actor  ON events (actor, time);
CREATE INDEX events_user   ON events (user_name, time);
CREATE INDEX events_action ON events (action, time);
CREATE INDEX events_host   ON events (host, time);
CREATE TABLE batch_rows (
	batch_id  INTEGER PRIMARY KEY,
	first_row INTEGER NOT NULL,
	rows      INTEGER NOT NULL
);
CREATE TABLE index_state (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	through_batch INTEGER NOT NULL
);
INSERT INTO index_state (id, through_batch) VALUES (1, 0);
`,
	// 2: postings (postings.go) instead of the per-event indexes by
	// actor, user, action and host. The file is emptied and rebuilt from
	// the stored bodies, as for a lost file: postings are written per
	// index transaction, from the parsed events.
	`
DROP INDEX events_actor;
DROP INDEX events_user;
DROP INDEX events_action;
DROP INDEX events_host;
DELETE FROM events;
DELETE FROM batch_rows;
UPDATE index_state SET through_batch = 0 WHERE id = 1;
-- Row ids in insertion order, which is first_row order: provtrail verify
-- reads one index transaction's rows after another. The term index covers
-- what query planning reads, so only the chosen term's entries are read.
CREATE TABLE postings (
	id        INTEGER PRIMARY KEY,
	first_row INTEGER NOT NULL,
	field     INTEGER NOT NULL,
	value     TEXT NOT NULL,
	n         INTEGER NOT NULL,
	min_time  INTEGER NOT NULL,
	max_time  INTEGER NOT NULL,
	entries   BLOB NOT NULL
);
CREATE INDEX postings_term ON postings (field, value, first_row, n, min_time, max_time);
`,
}

// entitlementsMigrations version EntitlementsFile.
var entitlementsMigrations = []string{
	// 1: who holds what now, and the history of changes in index order.
	// The current table is keyed name first, so that a group's holders
	// and a revoke by name need no index of their own; by user it has
	// one. The history is only ever replayed whole, so it is kept a blob
	// per transaction (enthistory.go); it needs no unique key: an event
	// already stored from an earlier batch is skipped by the events stage
	// and its changes are not recorded again.
	`
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
	PRIMARY KEY (name, kind, system, scope, user_name)
) WITHOUT ROWID;
CREATE INDEX entitlements_user ON entitlements (user_name);
-- One row per index transaction: its changes, in order (appendChanges).
CREATE TABLE entitlement_history (
	id      INTEGER PRIMARY KEY,
	changes BLOB NOT NULL
);
CREATE TABLE index_state (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	through_batch INTEGER NOT NULL
);
INSERT INTO index_state (id, through_batch) VALUES (1, 0);
`,
	// 2: the current table keyed by where and whom first, with no
	// secondary index: the by-user index cost a third of the stage's CPU
	// per grant (BenchmarkIndexStages: 11.1 -> 7.3 µs/event without it),
	// while every revoke it served is a key prefix now (a user's holdings
	// on one system and scope), or, for a deleted group, a scan of one
	// system and scope's holdings. Queries across systems by user or
	// group read the whole table (Entitlements).
	`
CREATE TABLE entitlements_v2 (
	system     TEXT NOT NULL,
	scope      TEXT NOT NULL,
	user_name  TEXT NOT NULL,
	kind       TEXT NOT NULL,
	name       TEXT NOT NULL,
	since      INTEGER NOT NULL,
	granted_by TEXT NOT NULL,
	event_id   TEXT NOT NULL,
	log_index  INTEGER NOT NULL,
	PRIMARY KEY (system, scope, user_name, kind, name)
) WITHOUT ROWID;
INSERT INTO entitlements_v2 (system, scope, user_name, kind, name, since, granted_by, event_id, log_index)
	SELECT system, scope, user_name, kind, name, since, granted_by, event_id, log_index FROM entitlements;
DROP TABLE entitlements;
ALTER TABLE entitlements_v2 RENAME TO entitlements;
`,
}

// indexDB is one file of the derived index.
type indexDB struct {
	path string
	db   *sql.DB // readers
	w    *sql.DB // the one writer connection, used only by its stage
	// through is the last batch whose rows the file holds (its
	// index_state), owned by the file's stage once indexing runs.
	through int64
	// reset empties the file's tables when it is ahead of the batches.
	reset string
	stmts map[string]*sql.Stmt
}

// openIndexDB opens (creating and migrating) one file of the index. Its
// transactions commit with synchronous=NORMAL: the file is derived from
// the stored batches and holds its own watermark, so a crash loses at most
// its newest transactions (WAL recovery keeps a prefix of the commits),
// which the indexer redoes from the bodies. Checkpoints run every 8 MiB of
// WAL: each one's fsyncs write out what the index wrote since the last, and
// the ack path's fsyncs (the log's, the store's) wait behind them on the
// same file system; with 64 MiB checkpoints one ack in ten waited over
// 250 ms at 50k events/s (BenchmarkIngestSustained, ext4).
func openIndexDB(ctx context.Context, dir, name string, migs []string, cacheKiB int, reset string) (*indexDB, error) {
	path := filepath.Join(dir, name)
	w, db, err := openDB(ctx, path, migs, indexPageSize, "synchronous(NORMAL)", fmt.Sprintf("cache_size(-%d)", cacheKiB),
		fmt.Sprintf("wal_autocheckpoint(%d)", 8<<20/indexPageSize))
	if err != nil {
		return nil, fmt.Errorf("open index: %w", err)
	}
	x := &indexDB{path: path, db: db, w: w, reset: reset, stmts: map[string]*sql.Stmt{}}
	if err := w.QueryRowContext(ctx, sqlThrough).Scan(&x.through); err != nil {
		x.close()
		return nil, fmt.Errorf("open index %s: index state: %w", path, err)
	}
	return x, nil
}

// indexPageSize is the page size of a new index file: larger pages than
// SQLite's 4 KiB mean fewer pages (WAL frames, each written with its own
// system calls) per transaction and shallower index b-trees
// (BenchmarkIndexStages: about 15% less CPU per event with 16 KiB).
const indexPageSize = 16384

const (
	sqlThrough    = `SELECT through_batch FROM index_state WHERE id = 1`
	sqlSetThrough = `UPDATE index_state SET through_batch = ? WHERE id = 1`
)

// resetIfAhead empties the file when it holds batches the store does not
// (a data dir whose StoreFile was restored from an older backup): the
// indexer then rebuilds it from the stored bodies.
func (x *indexDB) resetIfAhead(ctx context.Context, maxBatch int64, log *slog.Logger) error {
	if x.through <= maxBatch {
		return nil
	}
	log.Warn("index is ahead of the stored batches; rebuilding it from the bodies", "file", x.path, "indexed_through", x.through, "max_batch", maxBatch)
	if _, err := x.w.ExecContext(ctx, x.reset+`; UPDATE index_state SET through_batch = 0 WHERE id = 1`); err != nil {
		return fmt.Errorf("reset index %s: %w", x.path, err)
	}
	x.through = 0
	return nil
}

func (x *indexDB) prepare(queries ...string) error {
	for _, q := range queries {
		st, err := x.w.Prepare(q)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", q, err)
		}
		x.stmts[q] = st
	}
	return nil
}

func (x *indexDB) close() error {
	if x == nil {
		return nil
	}
	for _, st := range x.stmts {
		st.Close()
	}
	return errors.Join(x.db.Close(), x.w.Close())
}

// openIndex opens both index files and, for central (index), prepares the
// stages' statements and rebuilds a file that is ahead of the store.
func (s *SQLite) openIndex(ctx context.Context, dir string, index bool) error {
	var err error
	if s.ev, err = openIndexDB(ctx, dir, EventsFile, eventsMigrations, 131072, `DELETE FROM events; DELETE FROM batch_rows; DELETE FROM postings`); err != nil {
		return err
	}
	if s.ent, err = openIndexDB(ctx, dir, EntitlementsFile, entitlementsMigrations, 65536, `DELETE FROM entitlements; DELETE FROM entitlement_history`); err != nil {
		return err
	}
	if !index {
		return nil
	}
	return s.prepareIndex(ctx)
}

// prepareIndex rebuilds an index file that is ahead of the store and
// prepares the index stages' statements.
func (s *SQLite) prepareIndex(ctx context.Context) error {
	var err error
	var maxBatch int64
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM batches`).Scan(&maxBatch); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	for _, x := range []*indexDB{s.ev, s.ent} {
		if err := x.resetIfAhead(ctx, maxBatch, s.log); err != nil {
			return err
		}
	}
	s.indexed = min(s.ev.through, s.ent.through)
	s.next = s.indexed
	if s.insEvents, err = prepareMulti(s.ev.w, insertEventsHead, "(?,?,?,?,?,?,?,?,?,?,?,?)", "", 12); err != nil {
		return err
	}
	if s.insPostings, err = prepareMulti(s.ev.w, insertPostingsHead, "(?,?,?,?,?,?,?)", "", 7); err != nil {
		return err
	}
	if s.insGrants, err = prepareMulti(s.ent.w, `INSERT OR IGNORE INTO entitlements (system, scope, user_name, kind, name, since, granted_by, event_id, log_index) VALUES `,
		"(?,?,?,?,?,?,?,?,?)", "", 9); err != nil {
		return err
	}
	if err := s.ev.prepare(sqlEventAt, sqlSetThrough, sqlMaxRow, sqlBatchRows); err != nil {
		return err
	}
	return s.ent.prepare(sqlSetThrough, sqlRevoke, sqlRevokeUser, sqlRevokeName, sqlHistory)
}

func (s *SQLite) closeIndex() error {
	s.insEvents.close()
	s.insPostings.close()
	s.insGrants.close()
	return errors.Join(s.ev.close(), s.ent.close())
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

// An index transaction inserts up to maxIndexEvents events (at least one
// batch): large transactions write each hot index page to the WAL once
// rather than once per transaction.
const maxIndexEvents = 32768

// indexer is the first stage of indexing: it inserts committed batches'
// events into EventsFile and hands each transaction's batches to the
// entitlement stage, until StopIndexing, which it answers by indexing
// everything committed first.
func (s *SQLite) indexer() {
	defer close(s.jobs)
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
			n, err := s.indexEvents(context.Background())
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

// indexJob is one events transaction's batches, handed to the
// entitlement stage with the events it did not store because an earlier
// batch holds them.
type indexJob struct {
	todo    []indexBatch
	skipped map[evKey]bool
}

// indexEvents indexes the events of the next batches and returns how many
// batches it handed on.
func (s *SQLite) indexEvents(ctx context.Context) (int, error) {
	from := s.next
	// Batches the events file already holds (the entitlement file is
	// behind it after a crash, or was rebuilt) are only handed on.
	stored := from < s.ev.through
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
		if stored && r.id > s.ev.through {
			break
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
	last := todo[len(todo)-1].id
	var skipped map[evKey]bool
	if stored {
		skipped, err = s.storedElsewhere(ctx, todo)
	} else {
		skipped, err = s.insertEventsTx(ctx, todo, last)
	}
	if err != nil {
		return 0, err
	}
	s.next = last
	s.jobs <- indexJob{todo: todo, skipped: skipped}
	return len(todo), nil
}

// insertEventsTx inserts the batches' events and the events file's new
// watermark in one transaction.
func (s *SQLite) insertEventsTx(ctx context.Context, todo []indexBatch, last int64) (map[evKey]bool, error) {
	tx, err := s.ev.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("index events: begin: %w", err)
	}
	var before int64
	err = tx.Stmt(s.ev.stmts[sqlMaxRow]).QueryRow().Scan(&before)
	var skipped map[evKey]bool
	if err == nil {
		skipped, err = s.insertEvents(tx, todo)
	}
	if err == nil {
		err = s.recordBatchRows(tx, todo, skipped, before)
	}
	if err == nil {
		err = s.insertPostings(tx, todo, skipped, before+1)
	}
	if err == nil {
		_, err = tx.Stmt(s.ev.stmts[sqlSetThrough]).Exec(last)
	}
	if err != nil {
		return nil, errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("index events: commit: %w", err)
	}
	s.ev.through = last
	return skipped, nil
}

// recordBatchRows records each batch's range of event rows. SQLite gives
// a new row the id after the largest one, and the batches' stored events
// were inserted in order after row before, so they are consecutive; the
// largest id afterwards proves it.
func (s *SQLite) recordBatchRows(tx *sql.Tx, todo []indexBatch, skipped map[evKey]bool, before int64) error {
	var last int64
	if err := tx.Stmt(s.ev.stmts[sqlMaxRow]).QueryRow().Scan(&last); err != nil {
		return fmt.Errorf("index events: last row: %w", err)
	}
	total := int64(0)
	for _, b := range todo {
		for _, e := range b.events {
			if !skipped[evKey{b.id, e.Ord}] {
				total++
			}
		}
	}
	if last != before+total {
		return fmt.Errorf("index events: %d events stored after row %d, but the last row is %d", total, before, last)
	}
	next := before + 1
	ins := tx.Stmt(s.ev.stmts[sqlBatchRows])
	for _, b := range todo {
		n := int64(0)
		for _, e := range b.events {
			if !skipped[evKey{b.id, e.Ord}] {
				n++
			}
		}
		if n == 0 {
			continue
		}
		if _, err := ins.Exec(b.id, next, n); err != nil {
			return fmt.Errorf("index events: batch %d rows: %w", b.id, err)
		}
		next += n
	}
	return nil
}

// storedElsewhere finds, for batches whose events are already in the
// events file, the events that were skipped because another row holds
// their (time, id).
func (s *SQLite) storedElsewhere(ctx context.Context, todo []indexBatch) (map[evKey]bool, error) {
	var skipped map[evKey]bool
	for _, b := range todo {
		for _, e := range b.events {
			var batch int64
			var ord int
			err := s.ev.db.QueryRowContext(ctx, sqlEventAt, unixNano(e.Time), e.EventID).Scan(&batch, &ord)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("event %s: %w", e.EventID, err)
			}
			if err == nil && (batch != b.id || ord != e.Ord) {
				if skipped == nil {
					skipped = map[evKey]bool{}
				}
				skipped[evKey{b.id, e.Ord}] = true
			}
		}
	}
	return skipped, nil
}

// entitler is the second stage of indexing: it applies each job's
// entitlement changes to EntitlementsFile, then marks its batches indexed
// and calls the index hook.
func (s *SQLite) entitler() {
	defer close(s.indexDone)
	giveUp := false
	for job := range s.jobs {
		for !giveUp {
			err := s.indexEntitlements(job)
			if err == nil {
				s.finishJob(job)
				break
			}
			s.log.Error("index entitlements", "err", err)
			select {
			case <-time.After(time.Second):
			case <-s.stopIndex:
				// Stopping: the next start redoes what is left.
				giveUp = true
			}
		}
	}
}

// indexEntitlements applies the changes of a job's batches that the
// entitlement file does not hold yet, with its new watermark, in one
// transaction.
func (s *SQLite) indexEntitlements(job indexJob) error {
	todo := job.todo
	for len(todo) > 0 && todo[0].id <= s.ent.through {
		todo = todo[1:]
	}
	if len(todo) == 0 {
		return nil
	}
	last := todo[len(todo)-1].id
	tx, err := s.ent.w.Begin()
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// An event already stored (from an earlier batch) was applied then;
	// it does not change entitlements again.
	err = s.applyEntitlements(tx, entitlementChanges(todo, job.skipped))
	if err == nil {
		_, err = tx.Stmt(s.ent.stmts[sqlSetThrough]).Exec(last)
	}
	if err != nil {
		return errors.Join(err, tx.Rollback())
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.ent.through = last
	return nil
}

// finishJob marks a job's batches indexed and calls the index hook.
func (s *SQLite) finishJob(job indexJob) {
	last := job.todo[len(job.todo)-1].id
	s.imu.Lock()
	for _, b := range job.todo {
		delete(s.pending, b.id)
	}
	if last > s.indexed {
		s.indexed = last
		close(s.indexedCh)
		s.indexedCh = make(chan struct{})
	}
	hook := s.onIndexed
	s.imu.Unlock()
	if hook != nil {
		out := make([]IndexedBatch, len(job.todo))
		for i, b := range job.todo {
			out[i] = IndexedBatch{BatchID: b.id, LogIndex: b.logIndex, Events: b.events}
		}
		hook(out)
	}
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
// indexed (queryable, and applied to the entitlements), as the index
// files record it.
func (s *SQLite) IndexedThrough(ctx context.Context) (int64, error) {
	var ev, ent int64
	if err := s.ev.db.QueryRowContext(ctx, sqlThrough).Scan(&ev); err != nil {
		return 0, fmt.Errorf("events index state: %w", err)
	}
	if err := s.ent.db.QueryRowContext(ctx, sqlThrough).Scan(&ent); err != nil {
		return 0, fmt.Errorf("entitlements index state: %w", err)
	}
	return min(ev, ent), nil
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

// rowsPerStmt is the most rows one multi-row INSERT carries (at most 11
// parameters each; SQLite allows 32766): per-statement overhead dominates
// single-row inserts.
const rowsPerStmt = 128

// multiInsert is a multi-row INSERT prepared once on a writer connection
// for every power of two of rows up to rowsPerStmt.
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

// Statements of the index transactions that are not multi-row inserts.
const (
	sqlEventAt    = `SELECT batch_id, ord FROM events WHERE time = ? AND event_id = ?`
	sqlMaxRow     = `SELECT COALESCE(MAX(id), 0) FROM events`
	sqlBatchRows  = `INSERT INTO batch_rows (batch_id, first_row, rows) VALUES (?, ?, ?)`
	sqlHistory    = `INSERT INTO entitlement_history (changes) VALUES (?)`
	sqlRevoke     = `DELETE FROM entitlements WHERE system = ? AND scope = ? AND user_name = ? AND kind = ? AND name = ?`
	sqlRevokeUser = `DELETE FROM entitlements WHERE system = ? AND scope = ? AND user_name = ?`
	sqlRevokeName = `DELETE FROM entitlements WHERE system = ? AND scope = ? AND kind = ? AND name = ?`
	// OR IGNORE: an event whose (time, id) is stored is not stored
	// again (the other constraints are NOT NULLs, never violated).
	insertEventsHead = `INSERT OR IGNORE INTO events (batch_id, ord, event_id, time, action, outcome, actor, user_name, group_name, privileges, system, host) VALUES `
)

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
	n := 0
	for _, b := range todo {
		n += len(b.events)
	}
	args := make([]any, 0, 12*n)
	for _, b := range todo {
		for i := range b.events {
			e := &b.events[i]
			all, ids = append(all, e), append(ids, b.id)
			args = append(args, b.id, e.Ord, e.EventID, unixNano(e.Time), e.Action, e.Outcome, e.Actor, e.User, e.Group, e.Privileges, e.System, e.Host)
		}
	}
	var skipped map[evKey]bool
	err := s.insEvents.exec(tx, args, func(first, n int, affected int64) error {
		if affected == int64(n) {
			return nil
		}
		// Some were already stored: find which, by who holds their key.
		at := tx.Stmt(s.ev.stmts[sqlEventAt])
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
