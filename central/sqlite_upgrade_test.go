package central

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/entitlements"
	"github.com/provtrail/provtrail/signer"
)

// TestSQLiteUpgrade opens data dirs written by earlier releases and checks
// that after the upgrade the index is rebuilt from the stored bodies in its
// own files and every query answers as before:
//   - testdata/store-v5: schema version 5 (events and entitlements indexed
//     inside central.db), written by the store of commit 3ac5a0e from three
//     batches: five grants on host-fx-a, four on host-fx-b, and a batch
//     re-reading two of the first events with a removal of user1 on
//     host-fx-a;
//   - testdata/store-v6: the same data dir opened and indexed by the store
//     of commit 4209259 (index files at their first schema: per-event
//     indexes in events.db, entitlements keyed by name).
func TestSQLiteUpgrade(t *testing.T) {
	for _, from := range []string{"store-v5", "store-v6"} {
		t.Run(from, func(t *testing.T) { testSQLiteUpgrade(t, from) })
	}
}

func testSQLiteUpgrade(t *testing.T, from string) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", from))); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d (%v), want %d", v, err, len(migrations))
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE name IN ('events', 'entitlements', 'entitlement_history', 'index_state')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d index tables left in %s (%v)", n, StoreFile, err)
	}
	for _, f := range []string{EventsFile, EntitlementsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []struct {
		x    *indexDB
		migs []string
	}{{s.ev, eventsMigrations}, {s.ent, entitlementsMigrations}} {
		var v int
		if err := f.x.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != len(f.migs) {
			t.Fatalf("%s schema version %d (%v), want %d", f.x.path, v, err, len(f.migs))
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitIndexed(wctx, 3); err != nil {
		t.Fatal(err)
	}
	if through, err := s.IndexedThrough(ctx); err != nil || through != 3 {
		t.Fatalf("indexed through %d (%v), want 3", through, err)
	}

	ids := func(q EventQuery) []string {
		t.Helper()
		var out []string
		for {
			p, err := s.QueryEvents(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Events {
				out = append(out, e.EventID)
			}
			if p.Next == "" {
				return out
			}
			q.After = p.Next
		}
	}
	for _, tt := range []struct {
		name string
		q    EventQuery
		want []string
	}{
		{"all, paged", EventQuery{Limit: 4}, []string{"fx-a-0", "fx-a-1", "fx-a-2", "fx-a-3", "fx-a-4", "fx-b-0", "fx-b-1", "fx-b-2", "fx-b-3", "fx-a-rm1"}},
		{"user", EventQuery{User: "user1"}, []string{"fx-a-1", "fx-b-1", "fx-a-rm1"}},
		{"host", EventQuery{Host: "host-fx-b", Limit: 3}, []string{"fx-b-0", "fx-b-1", "fx-b-2", "fx-b-3"}},
		{"action", EventQuery{Action: "group.member.remove"}, []string{"fx-a-rm1"}},
		{"actor and group", EventQuery{Actor: "root", Group: "wheel", Since: time.Date(2026, 3, 1, 13, 0, 2, 0, time.UTC)}, []string{"fx-b-2", "fx-b-3", "fx-a-rm1"}},
	} {
		if got := ids(tt.q); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}

	// The re-read events of batch 3 are stored once, from batch 1.
	evs, err := s.BatchEvents(ctx, 3)
	if err != nil || len(evs) != 1 || evs[0].EventID != "fx-a-rm1" || evs[0].Ord != 2 || evs[0].BatchID != 3 {
		t.Fatalf("batch 3 events: %+v %v", evs, err)
	}
	e, err := s.EventByID(ctx, "fx-b-2")
	if err != nil || e.BatchID != 2 || e.Ord != 2 || e.User != "user2" || e.Host != "host-fx-b" || len(e.JSON) == 0 {
		t.Fatalf("event fx-b-2: %+v %v", e, err)
	}

	holders := func(q EntitlementQuery) []string {
		t.Helper()
		hs, err := s.Entitlements(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range hs {
			out = append(out, h.Scope+"/"+h.Name+"/"+h.User)
		}
		return out
	}
	if got, want := holders(EntitlementQuery{}), []string{
		"host-fx-a/wheel/user0", "host-fx-a/wheel/user2", "host-fx-a/wheel/user3", "host-fx-a/wheel/user4",
		"host-fx-b/wheel/user0", "host-fx-b/wheel/user1", "host-fx-b/wheel/user2", "host-fx-b/wheel/user3",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("entitlements %q, want %q", got, want)
	}
	if got, want := holders(EntitlementQuery{User: "user1", Group: "wheel"}), []string{"host-fx-b/wheel/user1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("user1's entitlements %q, want %q", got, want)
	}
	drift, err := s.EntitlementDrift(ctx, time.Date(2026, 3, 1, 12, 0, 3, 0, time.UTC), time.Date(2026, 3, 1, 13, 0, 1, 0, time.UTC))
	if err != nil || len(drift) != 3 {
		t.Fatalf("drift: %+v %v", drift, err)
	}
}

// TestSQLiteIndexRebuild checks that each index file is rebuilt from the
// stored bodies when it lost transactions, is missing, or is ahead of the
// store, with events re-read from an earlier batch still skipped (their
// entitlement changes not applied again).
func TestSQLiteIndexRebuild(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/store-v5")); err != nil {
		t.Fatal(err)
	}
	open := func() *SQLite {
		t.Helper()
		s, err := OpenSQLite(ctx, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.WaitIndexed(wctx, 4); err != nil {
			t.Fatal(err)
		}
		return s
	}
	type state struct {
		Events   []string
		Holdings []string
		History  int
	}
	snapshot := func(s *SQLite) state {
		t.Helper()
		var st state
		p, err := s.QueryEvents(ctx, EventQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Events {
			st.Events = append(st.Events, fmt.Sprintf("%s@%d/%d", e.EventID, e.BatchID, e.Ord))
		}
		hs, err := s.Entitlements(ctx, EntitlementQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			st.Holdings = append(st.Holdings, h.Scope+"/"+h.User+"/"+h.EventID)
		}
		st.History = historyChanges(t, s)
		return st
	}

	// Batch 4 re-reads the grant to user1 on host-fx-a, which batch 3
	// removed: it is skipped, so user1 stays removed there.
	s, err := OpenSQLite(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := testEventsAt("fx-a", 2, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	body = body[bytes.IndexByte(body, '\n')+1:]
	evs, _ := parseEvents(body, signer.Digest{4}, nil)
	w := testBatchWrite("a1", 3, evs...)
	w.Batch.Body = body
	if res, err := s.CommitBatch(ctx, w); err != nil || res.BatchID != 4 {
		t.Fatalf("commit: %+v %v", res, err)
	}
	s.Close()
	s = open()
	want := snapshot(s)
	s.Close()
	if len(want.Events) != 10 || len(want.Holdings) != 8 || want.History != 10 || slices.Contains(want.Holdings, "host-fx-a/user1/fx-a-1") {
		t.Fatalf("indexed: %+v", want)
	}

	for _, tt := range []struct {
		name   string
		damage func()
	}{
		{"entitlement transactions lost", func() {
			// As if every transaction was lost.
			sqlExecIn(t, filepath.Join(dir, EntitlementsFile), `DELETE FROM entitlement_history`)
			sqlExecIn(t, filepath.Join(dir, EntitlementsFile), `DELETE FROM entitlements`)
			sqlExecIn(t, filepath.Join(dir, EntitlementsFile), `UPDATE index_state SET through_batch = 0`)
		}},
		{"events file missing", func() {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if err := os.Remove(filepath.Join(dir, EventsFile+suffix)); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
			}
		}},
		{"events file ahead of the store", func() {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `UPDATE events SET user_name = 'stale'`)
			sqlExecIn(t, filepath.Join(dir, EventsFile), `UPDATE index_state SET through_batch = 99`)
		}},
		{"both files missing", func() {
			for _, f := range []string{EventsFile, EntitlementsFile} {
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Remove(filepath.Join(dir, f+suffix)); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			}
		}},
	} {
		tt.damage()
		s := open()
		got := snapshot(s)
		s.Close()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: after rebuild\n%+v\nwant\n%+v", tt.name, got, want)
		}
	}
}

// historyChanges counts the changes in the stored entitlement history.
func historyChanges(t *testing.T, s *SQLite) int {
	t.Helper()
	rows, err := s.ent.db.Query(`SELECT changes FROM entitlement_history ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			t.Fatal(err)
		}
		if err := decodeChanges(blob, func(int64, entitlements.Change) { n++ }); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
