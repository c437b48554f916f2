package central

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The query index of EventsFile is postings, not one index entry per event
// and field: each index transaction writes, for every term (a field and a
// value, e.g. user "alice") its events have, one row listing those events'
// row ids and times. A b-tree insert costs the pure-Go SQLite 1.5–3.5 µs,
// so the four per-event indexes this replaces (actor, user, action, host)
// cost more CPU than everything else central does with an event; a term
// that recurs in a transaction (an actor, an action, a host, a user with
// several changes) now costs a few bytes. Queries read a term's postings
// and fetch the matching rows by id (postingsCandidates, fetchCandidates).

// termField is what a term names: its code is stored.
type termField uint8

const (
	termActor termField = 1 + iota
	termUser
	termAction
	termSystem
	termHost
	// termGroup is a group membership's group or a granted privilege
	// (the --group filter matches either).
	termGroup
)

type term struct {
	field termField
	value string
}

// eventTerms calls fn with each term an event is found by (a term more
// than once when the event names it twice; the builder records it once).
func eventTerms(e *StoredEvent, fn func(termField, string)) {
	for _, t := range [...]struct {
		f termField
		v string
	}{{termActor, e.Actor}, {termUser, e.User}, {termAction, e.Action}, {termSystem, e.System}, {termHost, e.Host}, {termGroup, e.Group}} {
		if t.v != "" {
			fn(t.f, t.v)
		}
	}
	for p := range strings.SplitSeq(e.Privileges, "\n") {
		if p != "" {
			fn(termGroup, p)
		}
	}
}

// posting is one term's entries in one index transaction: per event, the
// row id as a uvarint delta from the previous one (from firstRow-1) and
// the time as a zigzag varint delta from the previous one (from 0).
type posting struct {
	n             int
	minT, maxT    int64
	lastID, lastT int64
	entries       []byte
}

// postingsBuilder collects the postings of the events stored from row
// firstRow on, added in row order.
type postingsBuilder struct {
	firstRow int64
	terms    map[term]*posting
}

func newPostingsBuilder(firstRow int64) *postingsBuilder {
	return &postingsBuilder{firstRow: firstRow, terms: map[term]*posting{}}
}

// addEvent records the terms of the event stored as row id.
func (b *postingsBuilder) addEvent(id int64, e *StoredEvent) {
	t := unixNano(e.Time)
	eventTerms(e, func(f termField, v string) {
		k := term{f, v}
		p := b.terms[k]
		if p == nil {
			p = &posting{minT: t, maxT: t, lastID: b.firstRow - 1}
			b.terms[k] = p
		} else if p.lastID == id {
			return // the group is also a privilege, or a privilege repeats
		}
		p.entries = binary.AppendUvarint(p.entries, uint64(id-p.lastID))
		p.entries = binary.AppendVarint(p.entries, t-p.lastT)
		p.lastID, p.lastT = id, t
		p.n++
		p.minT, p.maxT = min(p.minT, t), max(p.maxT, t)
	})
}

// postingRow is one stored postings row.
type postingRow struct {
	firstRow   int64
	term       term
	n          int
	minT, maxT int64
	entries    []byte
}

// rows returns the collected postings in key order.
func (b *postingsBuilder) rows() []postingRow {
	out := make([]postingRow, 0, len(b.terms))
	for k, p := range b.terms {
		out = append(out, postingRow{b.firstRow, k, p.n, p.minT, p.maxT, p.entries})
	}
	slices.SortFunc(out, func(x, y postingRow) int {
		return cmp.Or(cmp.Compare(x.term.field, y.term.field), strings.Compare(x.term.value, y.term.value))
	})
	return out
}

// errBadPostings reports a postings row that does not decode.
var errBadPostings = errors.New("malformed postings")

// decodePostings calls fn with each entry's row id and time, in order, and
// fails on a row whose entries do not decode to n entries with row ids
// increasing from firstRow.
func decodePostings(r postingRow, fn func(id, t int64)) error {
	id, t := r.firstRow-1, int64(0)
	buf := r.entries
	for i := range r.n {
		d, k := binary.Uvarint(buf)
		if k <= 0 || d == 0 || d > 1<<53 {
			return fmt.Errorf("%w: entry %d of %d: bad row id delta", errBadPostings, i, r.n)
		}
		buf = buf[k:]
		dt, k := binary.Varint(buf)
		if k <= 0 {
			return fmt.Errorf("%w: entry %d of %d: bad time delta", errBadPostings, i, r.n)
		}
		buf = buf[k:]
		id += int64(d)
		t += dt
		fn(id, t)
	}
	if len(buf) != 0 {
		return fmt.Errorf("%w: %d bytes after %d entries", errBadPostings, len(buf), r.n)
	}
	return nil
}

const insertPostingsHead = `INSERT INTO postings (first_row, field, value, n, min_time, max_time, entries) VALUES `

// insertPostings writes the postings of the events a transaction stored
// from row firstRow on (skipped: those it did not store).
func (s *SQLite) insertPostings(tx *sql.Tx, todo []indexBatch, skipped map[evKey]bool, firstRow int64) error {
	b := newPostingsBuilder(firstRow)
	id := firstRow
	for _, bt := range todo {
		for i := range bt.events {
			e := &bt.events[i]
			if skipped[evKey{bt.id, e.Ord}] {
				continue
			}
			b.addEvent(id, e)
			id++
		}
	}
	rows := b.rows()
	args := make([]any, 0, 7*len(rows))
	for _, r := range rows {
		args = append(args, r.firstRow, int(r.term.field), r.term.value, r.n, r.minT, r.maxT, r.entries)
	}
	if err := s.insPostings.exec(tx, args, nil); err != nil {
		return fmt.Errorf("index events: postings: %w", err)
	}
	return nil
}

// terms returns the query's filters that postings answer.
func (q EventQuery) terms() []term {
	var ts []term
	for _, t := range []term{{termActor, q.Actor}, {termUser, q.User}, {termAction, q.Action}, {termSystem, q.System}, {termHost, q.Host}, {termGroup, q.Group}} {
		if t.value != "" {
			ts = append(ts, t)
		}
	}
	return ts
}

// timeSpan is a query's time window, from inclusive, until exclusive,
// and its page cursor: events after (afterT, afterID) in (time, row id)
// order.
type timeSpan struct {
	from, until     int64
	afterT, afterID int64
}

func (sp timeSpan) holds(id, t int64) bool {
	return t >= sp.from && t < sp.until && (t > sp.afterT || t == sp.afterT && id > sp.afterID)
}

// overlaps reports whether events from minT to maxT can be in the span.
func (sp timeSpan) overlaps(minT, maxT int64) bool {
	return maxT >= sp.from && minT < sp.until && maxT >= sp.afterT
}

// Postings pay off for selective terms; a term that most events have is
// answered faster by reading events in time order and filtering them.
const (
	// postingsAlways: a term with at most this many entries is read
	// from its postings whatever the table's size.
	postingsAlways = 20000
	// postingsShare: a term on at most 1/postingsShare of the events is
	// read from its postings.
	postingsShare = 50
	// intersectFactor: other terms with at most this many times the
	// chosen term's entries are decoded too, so candidates that lack
	// them are not fetched.
	intersectFactor = 8
)

// termHeader is a postings row without its entries.
type termHeader struct {
	id         int64
	n          int
	minT, maxT int64
}

// postingsCandidates decides whether a query is answered from postings
// and, if so, returns the row ids of the events that have every term
// (those whose terms were decoded) within the span, in (time, row id)
// order.
func (s *SQLite) postingsCandidates(ctx context.Context, terms []term, span timeSpan) ([]int64, bool, error) {
	if len(terms) == 0 {
		return nil, false, nil
	}
	type termRows struct {
		rows []termHeader
		n    int
	}
	all := make([]termRows, len(terms))
	best := 0
	for i, t := range terms {
		rows, err := s.ev.db.QueryContext(ctx, `SELECT id, n, min_time, max_time FROM postings INDEXED BY postings_term
			WHERE field = ? AND value = ? ORDER BY first_row`, int(t.field), t.value)
		if err != nil {
			return nil, false, fmt.Errorf("postings: %w", err)
		}
		for rows.Next() {
			var h termHeader
			if err := rows.Scan(&h.id, &h.n, &h.minT, &h.maxT); err != nil {
				rows.Close()
				return nil, false, fmt.Errorf("postings: %w", err)
			}
			if span.overlaps(h.minT, h.maxT) {
				all[i].rows = append(all[i].rows, h)
				all[i].n += h.n
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, false, fmt.Errorf("postings: %w", err)
		}
		if all[i].n < all[best].n {
			best = i
		}
	}
	if n := all[best].n; n > s.postingsAlways {
		var events int64
		if err := s.ev.db.QueryRowContext(ctx, sqlMaxRow).Scan(&events); err != nil {
			return nil, false, fmt.Errorf("postings: %w", err)
		}
		if int64(n)*postingsShare > events {
			return nil, false, nil
		}
	}
	type cand struct{ id, t int64 }
	var cands []cand
	err := s.readPostings(ctx, all[best].rows, func(id, t int64) {
		if span.holds(id, t) {
			cands = append(cands, cand{id, t})
		}
	})
	if err != nil {
		return nil, false, err
	}
	for i, tr := range all {
		if i == best || tr.n > intersectFactor*all[best].n+s.postingsAlways || len(cands) == 0 {
			continue
		}
		// Entries come in row id order: rows are read by first_row, and
		// each transaction's row ids follow the previous one's.
		var ids []int64
		if err := s.readPostings(ctx, tr.rows, func(id, _ int64) { ids = append(ids, id) }); err != nil {
			return nil, false, err
		}
		cands = slices.DeleteFunc(cands, func(c cand) bool {
			_, found := slices.BinarySearch(ids, c.id)
			return !found
		})
	}
	slices.SortFunc(cands, func(x, y cand) int { return cmp.Or(cmp.Compare(x.t, y.t), cmp.Compare(x.id, y.id)) })
	ids := make([]int64, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	return ids, true, nil
}

// readPostings decodes the entries of the given postings rows.
func (s *SQLite) readPostings(ctx context.Context, rows []termHeader, fn func(id, t int64)) error {
	for _, h := range rows {
		r := postingRow{n: h.n}
		if err := s.ev.db.QueryRowContext(ctx, `SELECT first_row, entries FROM postings WHERE id = ?`, h.id).Scan(&r.firstRow, &r.entries); err != nil {
			return fmt.Errorf("postings row %d: %w", h.id, err)
		}
		if err := decodePostings(r, fn); err != nil {
			return fmt.Errorf("postings row %d: %w", h.id, err)
		}
	}
	return nil
}

// fetchBatch is how many candidate rows one query fetches.
const fetchBatch = 256

// fetchCandidates returns up to n of the events with the given row ids
// (in (time, row id) order) that match where.
func (s *SQLite) fetchCandidates(ctx context.Context, ids []int64, where []string, args []any, n int) ([]StoredEvent, error) {
	var out []StoredEvent
	for len(ids) > 0 && len(out) < n {
		chunk := ids[:min(fetchBatch, len(ids))]
		ids = ids[len(chunk):]
		q := `SELECT ` + eventCols + ` FROM events WHERE id IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
		if len(where) > 0 {
			q += " AND " + strings.Join(where, " AND ")
		}
		qargs := make([]any, 0, len(chunk)+len(args))
		for _, id := range chunk {
			qargs = append(qargs, id)
		}
		evs, err := queryEventRows(ctx, s.ev.db, q, append(qargs, args...)...)
		if err != nil {
			return nil, err
		}
		// The chunk is in (time, row id) order; SQLite returns it by id.
		slices.SortFunc(evs, func(x, y StoredEvent) int {
			return cmp.Or(x.Time.Compare(y.Time), cmp.Compare(x.RowID, y.RowID))
		})
		out = append(out, evs...)
	}
	return out[:min(n, len(out))], nil
}

// String names a term in messages.
func (t term) String() string {
	names := [...]string{termActor: "actor", termUser: "user", termAction: "action", termSystem: "system", termHost: "host", termGroup: "group"}
	if int(t.field) < len(names) && names[t.field] != "" {
		return fmt.Sprintf("%s %q", names[t.field], t.value)
	}
	return fmt.Sprintf("field %d %q", t.field, t.value)
}

// checkPostings recomputes each index transaction's postings from the
// stored event rows and reports (fail) every term whose stored postings
// differ: with them, a query would miss events or return others. It
// returns how many postings rows it checked.
func (s *SQLite) checkPostings(ctx context.Context, fail func(format string, args ...any)) (int, error) {
	// One read transaction: a central indexing meanwhile commits events
	// and their postings together, and the check sees neither.
	tx, err := s.ev.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("postings: %w", err)
	}
	defer tx.Rollback()
	var minRow, maxRow int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM events`).Scan(&minRow, &maxRow); err != nil {
		return 0, fmt.Errorf("event rows: %w", err)
	}
	checked := 0
	var group []postingRow
	// Row ids before the first transaction's are covered by none.
	covered := max(minRow, 1)
	flush := func(end int64) error {
		first := covered
		if len(group) > 0 {
			first = group[0].firstRow
		}
		if first > covered {
			// Rows no stored postings cover: recompute them as one
			// transaction that stored nothing.
			if err := comparePostings(ctx, tx, covered, first, nil, fail); err != nil {
				return err
			}
		}
		if len(group) > 0 {
			if err := comparePostings(ctx, tx, first, end, group, fail); err != nil {
				return err
			}
		}
		covered = max(covered, end)
		group = group[:0]
		return nil
	}
	// Read in chunks by row id (insertion order), so that no query is
	// open on the transaction while the event rows are read.
	var after int64
	for {
		chunk, err := readPostingRows(ctx, tx, after, 1024)
		if err != nil {
			return checked, err
		}
		if len(chunk) == 0 {
			break
		}
		after = chunk[len(chunk)-1].id
		for _, r := range chunk {
			checked++
			if len(group) > 0 && r.firstRow == group[0].firstRow {
				group = append(group, r.postingRow)
				continue
			}
			if len(group) > 0 && r.firstRow < group[0].firstRow || r.firstRow < covered {
				fail("query index: postings for rows from %d are stored after those from row %d (out of index order)", r.firstRow, covered)
				continue
			}
			if err := flush(r.firstRow); err != nil {
				return checked, err
			}
			group = append(group, r.postingRow)
		}
	}
	return checked, flush(maxRow + 1)
}

type storedPosting struct {
	id int64
	postingRow
}

// readPostingRows reads up to n postings rows after row id after.
func readPostingRows(ctx context.Context, tx *sql.Tx, after int64, n int) ([]storedPosting, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, first_row, field, value, n, min_time, max_time, entries FROM postings WHERE id > ? ORDER BY id LIMIT ?`, after, n)
	if err != nil {
		return nil, fmt.Errorf("postings: %w", err)
	}
	defer rows.Close()
	var out []storedPosting
	for rows.Next() {
		var r storedPosting
		var f int
		if err := rows.Scan(&r.id, &r.firstRow, &f, &r.term.value, &r.n, &r.minT, &r.maxT, &r.entries); err != nil {
			return nil, fmt.Errorf("postings: %w", err)
		}
		r.term.field = termField(f)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postings: %w", err)
	}
	return out, nil
}

// comparePostings compares the stored postings of the transaction that
// stored rows first to end-1 with those its event rows give.
func comparePostings(ctx context.Context, tx *sql.Tx, first, end int64, stored []postingRow, fail func(string, ...any)) error {
	evs, err := queryEventRows(ctx, tx, `SELECT `+eventCols+` FROM events WHERE id >= ? AND id < ? ORDER BY id`, first, end)
	if err != nil {
		return fmt.Errorf("event rows %d to %d: %w", first, end-1, err)
	}
	b := newPostingsBuilder(first)
	for i := range evs {
		b.addEvent(evs[i].RowID, &evs[i])
	}
	want := b.rows()
	byTerm := make(map[term]postingRow, len(stored))
	for _, r := range stored {
		if _, dup := byTerm[r.term]; dup {
			fail("query index: postings of rows %d to %d list %s twice", first, end-1, r.term)
		}
		byTerm[r.term] = r
	}
	for _, w := range want {
		got, ok := byTerm[w.term]
		delete(byTerm, w.term)
		switch {
		case !ok:
			fail("query index: rows %d to %d have %d events with %s, the postings none (queries by it miss them)", first, end-1, w.n, w.term)
		case got.n != w.n || got.minT != w.minT || got.maxT != w.maxT || !slices.Equal(got.entries, w.entries):
			fail("query index: postings of %s for rows %d to %d do not match the event rows (%d entries, the rows give %d): queries by it return wrong events", w.term, first, end-1, got.n, w.n)
		}
	}
	for _, r := range stored {
		if _, extra := byTerm[r.term]; extra {
			delete(byTerm, r.term)
			fail("query index: postings of %s for rows %d to %d list %d events, no such event row has it", r.term, first, end-1, r.n)
		}
	}
	return nil
}
