package central

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/central/entitlements"
	"github.com/provtrail/provtrail/event"
)

// AlertQuery selects stored alerts. Empty fields match everything.
type AlertQuery struct {
	// Rule is the alert's rule name or built-in kind (fork, gap,
	// builtin.silent_agent, privileged_grant, ...).
	Rule     string
	Severity string
	// Acknowledged, when set, selects acknowledged (true) or open (false)
	// alerts.
	Acknowledged *bool
	Since        time.Time
	// Limit bounds the result (newest first); zero means 100.
	Limit int
}

// MaxAlertLimit bounds AlertQuery.Limit.
const MaxAlertLimit = 10000

const alertCols = `id, time, kind, severity, agent_id, stream_id, message, evidence_id, alert_id, details, acked_at, acked_by`

func scanAlert(scan func(...any) error) (Alert, error) {
	var a Alert
	var t, acked int64
	var details string
	if err := scan(&a.ID, &t, &a.Kind, &a.Severity, &a.AgentID, &a.StreamID, &a.Message, &a.EvidenceID, &a.AlertID, &details, &acked, &a.AckedBy); err != nil {
		return Alert{}, err
	}
	a.Time, a.AckedAt = fromNano(t), fromNano(acked)
	if details != "" && json.Valid([]byte(details)) {
		a.Details = json.RawMessage(details)
	}
	return a, nil
}

// QueryAlerts returns the stored alerts matching q, newest first.
func (s *SQLite) QueryAlerts(ctx context.Context, q AlertQuery) ([]Alert, error) {
	var where []string
	var args []any
	if q.Rule != "" {
		where, args = append(where, "kind = ?"), append(args, q.Rule)
	}
	if q.Severity != "" {
		where, args = append(where, "severity = ?"), append(args, q.Severity)
	}
	if q.Acknowledged != nil {
		if *q.Acknowledged {
			where = append(where, "acked_at <> 0")
		} else {
			where = append(where, "acked_at = 0")
		}
	}
	if !q.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, q.Since.UnixNano())
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxAlertLimit)
	query := `SELECT ` + alertCols + ` FROM alerts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	rows, err := s.db.QueryContext(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("query alerts: %w", err)
	}
	defer rows.Close()
	out := []Alert{}
	for rows.Next() {
		a, err := scanAlert(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("query alerts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AckAlert acknowledges the alert with the given id: the store's row id
// (digits) or the engine's alert id. Acknowledging twice keeps the first
// acknowledgement. It returns the alert as stored afterwards.
func (s *SQLite) AckAlert(ctx context.Context, id, by string, now time.Time) (Alert, error) {
	col, key := "alert_id", any(id)
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		col, key = "id", n
	}
	if id == "" {
		return Alert{}, ErrNotFound
	}
	var found bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		r, err := tx.Exec(`UPDATE alerts SET acked_at = ?, acked_by = ? WHERE `+col+` = ? AND acked_at = 0`, now.UnixNano(), by, key)
		if err != nil {
			return fmt.Errorf("ack alert %s: %w", id, err)
		}
		n, _ := r.RowsAffected()
		found = n > 0
		if !found {
			var one int
			err := tx.QueryRow(`SELECT 1 FROM alerts WHERE `+col+` = ?`, key).Scan(&one)
			found = err == nil
		}
		return nil
	})
	if err != nil {
		return Alert{}, err
	}
	if !found {
		return Alert{}, ErrNotFound
	}
	a, err := scanAlert(s.db.QueryRowContext(ctx, `SELECT `+alertCols+` FROM alerts WHERE `+col+` = ?`, key).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, ErrNotFound
	}
	return a, err
}

// HasAlert reports whether an alert with the engine alert id is stored.
func (s *SQLite) HasAlert(ctx context.Context, alertID string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM alerts WHERE alert_id = ?`, alertID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// entitlementActions are the actions entitlements.Changes acts on; only
// their events are decoded by the indexer.
var entitlementActions = map[string]bool{
	string(event.GroupMemberAdd): true, string(event.GroupMemberRemove): true,
	string(event.PrivilegeGrant): true, string(event.PrivilegeRevoke): true,
	string(event.UserDelete): true, string(event.GroupDelete): true, string(event.UserRename): true,
}

// entChange is one entitlement change of one stored event.
type entChange struct {
	time    int64
	eventID string
	c       entitlements.Change
}

// entitlementChanges collects what the batches' events do to the
// entitlement table: the changes parsed with each event (on the ingest
// path, or from the stored body after a restart), with the batch's log
// index.
func entitlementChanges(todo []indexBatch, skipped map[evKey]bool) []entChange {
	n := 0
	for _, b := range todo {
		for _, se := range b.events {
			n += len(se.ents)
		}
	}
	out := make([]entChange, 0, n)
	for _, b := range todo {
		for _, se := range b.events {
			if !entitlementActions[se.Action] || se.EventID == "" || skipped[evKey{b.id, se.Ord}] {
				continue
			}
			ents := se.ents
			if !se.parsed {
				ents = eventFields(se.JSON).ents
			}
			for _, c := range ents {
				c.Holding.LogIndex = int64(b.logIndex)
				out = append(out, entChange{time: unixNano(se.Time), eventID: se.EventID, c: c})
			}
		}
	}
	return out
}

// applyEntitlements records the changes in the history and applies them to
// the current table, in order, with multi-row statements where the order
// allows (runs of grants). The caller leaves out the changes of events
// that were already indexed.
func (s *SQLite) applyEntitlements(tx *sql.Tx, changes []entChange) error {
	if len(changes) == 0 {
		return nil
	}
	if _, err := tx.Stmt(s.ent.stmts[sqlHistory]).Exec(appendChanges(nil, changes)); err != nil {
		return fmt.Errorf("entitlement history: %w", err)
	}
	grants := make([]any, 0, 9*len(changes))
	flush := func() error {
		err := s.insGrants.exec(tx, grants, nil)
		grants = grants[:0]
		return err
	}
	for _, ec := range changes {
		h := ec.c.Holding
		if ec.c.Op == entitlements.Grant {
			grants = append(grants, h.System, h.Scope, h.User, string(h.Kind), h.Name, unixNano(h.Since), h.GrantedBy, h.EventID, h.LogIndex)
			continue
		}
		if err := flush(); err != nil {
			return fmt.Errorf("entitlements: %w", err)
		}
		var err error
		switch ec.c.Op {
		case entitlements.Revoke:
			_, err = tx.Stmt(s.ent.stmts[sqlRevoke]).Exec(h.System, h.Scope, h.User, string(h.Kind), h.Name)
		case entitlements.RevokeUser:
			_, err = tx.Stmt(s.ent.stmts[sqlRevokeUser]).Exec(h.System, h.Scope, h.User)
		case entitlements.RevokeName:
			_, err = tx.Stmt(s.ent.stmts[sqlRevokeName]).Exec(h.System, h.Scope, string(h.Kind), h.Name)
		}
		if err != nil {
			return fmt.Errorf("entitlements: %w", err)
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("entitlements: %w", err)
	}
	return nil
}

// EntitlementQuery selects current holdings. Empty fields match all;
// Group matches the group or privilege name (and "group:"+Group, the
// privilege collectors name a privileged group membership).
type EntitlementQuery struct {
	Group, User, System string
}

// Entitlements returns who holds what now, sorted by system, scope, kind,
// name and user. The table is keyed by system first (for the index
// stage's sake): a query by user or group without a system reads every
// holding.
func (s *SQLite) Entitlements(ctx context.Context, q EntitlementQuery) ([]entitlements.Holding, error) {
	var where []string
	var args []any
	if q.Group != "" {
		// A privilege granted through a group membership is named
		// "group:NAME" by collectors; --group NAME finds both.
		where, args = append(where, "(name = ? OR name = ?)"), append(args, q.Group, "group:"+q.Group)
	}
	for _, f := range []struct{ col, v string }{{"user_name", q.User}, {"system", q.System}} {
		if f.v != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.v)
		}
	}
	query := `SELECT system, scope, kind, name, user_name, since, granted_by, event_id, log_index FROM entitlements`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY system, scope, kind, name, user_name"
	rows, err := s.ent.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("entitlements: %w", err)
	}
	defer rows.Close()
	out := []entitlements.Holding{}
	for rows.Next() {
		var h entitlements.Holding
		var kind string
		var since int64
		if err := rows.Scan(&h.System, &h.Scope, &kind, &h.Name, &h.User, &since, &h.GrantedBy, &h.EventID, &h.LogIndex); err != nil {
			return nil, fmt.Errorf("entitlements: %w", err)
		}
		h.Kind, h.Since = entitlements.Kind(kind), fromNano(since)
		out = append(out, h)
	}
	return out, rows.Err()
}

// EntitlementDrift returns what was granted in [from, to) and is still
// held at to (by event time), replaying the stored entitlement history.
func (s *SQLite) EntitlementDrift(ctx context.Context, from, to time.Time) ([]entitlements.Holding, error) {
	rows, err := s.ent.db.QueryContext(ctx, `SELECT changes FROM entitlement_history ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("entitlement drift: %w", err)
	}
	defer rows.Close()
	t := entitlements.NewTable()
	granted := map[entitlements.Key]bool{}
	end := to.UnixNano()
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return nil, fmt.Errorf("entitlement drift: %w", err)
		}
		err := decodeChanges(blob, func(tm int64, c entitlements.Change) {
			if tm >= end {
				return
			}
			c.Holding.Since = fromNano(tm)
			if c.Op == entitlements.Grant && !c.Holding.Since.Before(from) {
				granted[c.Holding.Key] = true
			}
			t.Apply([]entitlements.Change{c})
		})
		if err != nil {
			return nil, fmt.Errorf("entitlement drift: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("entitlement drift: %w", err)
	}
	out := t.Holdings(func(h entitlements.Holding) bool { return granted[h.Key] && !h.Since.Before(from) })
	if out == nil {
		out = []entitlements.Holding{}
	}
	return out, nil
}

// ErrStaleStatus is returned by SaveStatus for a report not newer than the
// last one accepted from the agent (a replay).
var ErrStaleStatus = errors.New("status report is not newer than the last one accepted")

// SaveStatus records an agent's verified status report if it is newer than
// the last one (replay protection) and returns the previous report (nil:
// none).
func (s *SQLite) SaveStatus(ctx context.Context, agentID string, created, received time.Time, report []byte) ([]byte, error) {
	var prev []byte
	stale := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		prev, stale = nil, false
		var last int64
		var rep string
		err := tx.QueryRow(`SELECT created, report FROM agent_status WHERE agent_id = ?`, agentID).Scan(&last, &rep)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("agent status %s: %w", agentID, err)
		case created.UnixNano() <= last:
			// Not an error of the transaction: other writes in the
			// group must not be rolled back for a replayed report.
			stale = true
			return nil
		default:
			prev = []byte(rep)
		}
		_, err = tx.Exec(`INSERT INTO agent_status (agent_id, created, received_at, report) VALUES (?, ?, ?, ?)
			ON CONFLICT (agent_id) DO UPDATE SET created = excluded.created, received_at = excluded.received_at, report = excluded.report`,
			agentID, created.UnixNano(), received.UnixNano(), string(report))
		return err
	})
	if err == nil && stale {
		err = ErrStaleStatus
	}
	return prev, err
}

// IndexedBatchesAfter returns up to limit indexed batches with ids in
// (after, through], in order, with their events parsed from the stored
// bodies (for the alert rules to catch up after a restart).
func (s *SQLite) IndexedBatchesAfter(ctx context.Context, after, through int64, limit int) ([]IndexedBatch, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, log_index FROM batches WHERE id > ? AND id <= ? ORDER BY id LIMIT ?`, after, through, limit)
	if err != nil {
		return nil, fmt.Errorf("indexed batches: %w", err)
	}
	var out []IndexedBatch
	for rows.Next() {
		var b IndexedBatch
		var li int64
		if err := rows.Scan(&b.BatchID, &li); err != nil {
			rows.Close()
			return nil, fmt.Errorf("indexed batches: %w", err)
		}
		b.LogIndex = uint64(li)
		out = append(out, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("indexed batches: %w", err)
	}
	for i := range out {
		if out[i].Events, err = s.parseStoredBatch(ctx, out[i].BatchID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// HasAlertSince reports whether an alert of kind for the agent's stream
// was recorded at or after since (so that a restart does not raise an
// alert about the same condition again).
func (s *SQLite) HasAlertSince(ctx context.Context, kind, agentID, streamID string, since time.Time) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, `SELECT 1 FROM alerts WHERE kind = ? AND agent_id = ? AND stream_id = ? AND time >= ? LIMIT 1`,
		kind, agentID, streamID, unixNano(since)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
