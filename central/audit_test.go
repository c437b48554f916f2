package central

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/provtrail/provtrail/signer"
)

// auditDataDir runs an offline audit of a central data dir.
func auditDataDir(t *testing.T, dataDir string, previous []byte) *AuditReport {
	t.Helper()
	ctx := context.Background()
	vkey, err := os.ReadFile(filepath.Join(dataDir, LogDir, LogKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	v, origin, err := ParseVerifierKey(string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenSQLiteTool(ctx, dataDir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rep, err := Audit(ctx, AuditConfig{Source: NewStoreSource(dataDir, store), Origin: origin, Verifier: v, Store: store, Previous: previous})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func sqlExec(t *testing.T, dataDir, q string, args ...any) {
	t.Helper()
	sqlExecIn(t, filepath.Join(dataDir, StoreFile), q, args...)
}

// openFile opens one database file of a data dir, closed when the test ends.
func openFile(t *testing.T, file string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// sqlQueryRow scans the one row q selects from a database file.
func sqlQueryRow(t *testing.T, file, q string, dest ...any) {
	t.Helper()
	if err := openFile(t, file).QueryRow(q).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// sqlExecIn runs q on one database file of a data dir.
func sqlExecIn(t *testing.T, file, q string, args ...any) {
	t.Helper()
	db := openFile(t, file)
	defer db.Close()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s changed nothing", q)
	}
}

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at = len(b) + at
	}
	b[at] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAuditCatchesTampering(t *testing.T) {
	tc := startTestCentral(t, "host-1", "host-2")
	ctx := context.Background()
	for _, id := range []string{"host-1", "host-2"} {
		c := tc.agents[id].chain(t, filepath.Join(tc.dir, "chain-"+id))
		for i := range 4 {
			if status, r := tc.post(t, seal(t, c, id+"-"+string(rune('a'+i)), 20)); status != 200 {
				t.Fatalf("%d %+v", status, r)
			}
		}
	}
	_, firstCP, err := tc.srv.Log().WaitPublished(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}

	// Remote audit against the running central.
	src, err := NewHTTPSource(tc.url, tc.client)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Audit(ctx, AuditConfig{Source: src, Origin: tc.srv.Log().Origin(), Verifier: tc.srv.Log().Verifier(), Previous: firstCP, Inclusion: []uint64{0, 5}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Batches != 8 || !rep.Consistent || len(rep.Included) != 2 {
		t.Fatalf("remote audit: %+v", rep)
	}

	// One more batch after firstCP, then stop central: shutdown publishes
	// a checkpoint covering everything.
	c := tc.agents["host-1"].chain(t, filepath.Join(tc.dir, "chain-host-1"))
	tc.post(t, seal(t, c, "late", 3))
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tc.srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	dataDir := tc.cfg.Central.DataDir
	rep = auditDataDir(t, dataDir, firstCP)
	if !rep.OK() || rep.Leaves != 9 || rep.Events != 163 || rep.Streams != 2 || !rep.Consistent {
		t.Fatalf("clean audit: %+v", rep)
	}

	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"edited event", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `UPDATE events SET user_name = 'nobody', time = time + 1000000000 WHERE event_id = 'host-1-b-3'`)
		}, `stored event host-1-b-3 (line 3) differs from the signed body: user "nobody", body has "user3"; time`},
		{"edited index column", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `UPDATE events SET actor = 'mallory' WHERE event_id = 'host-2-a-0'`)
		}, `actor "mallory", body has "root"`},
		{"deleted event", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `DELETE FROM events WHERE event_id = 'host-1-c-5'`)
		}, "event 5 (host-1-c-5) of the body is missing"},
		{"inserted event", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `INSERT INTO events (batch_id, ord, event_id, time, action, outcome, actor, user_name, group_name, privileges, system, host)
				SELECT batch_id, 19, 'fake', time, action, outcome, actor, user_name, group_name, privileges, system, host FROM events LIMIT 1`)
		}, "store holds 164 event rows, the signed batch bodies account for 163"},
		{"event moved to another batch", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `UPDATE events SET batch_id = batch_id + 1 WHERE event_id = 'host-1-c-5'`)
		}, "(host-1-c-5) is not a line of the batch body"},
		{"query index missing a term", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `DELETE FROM postings WHERE field = 2 AND value = 'user3'`)
		}, `events with user "user3", the postings none (queries by it miss them)`},
		{"query index term renamed", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `UPDATE postings SET value = 'user99' WHERE field = 2 AND value = 'user4'`)
		}, `postings of user "user99" for rows`},
		{"query index entries edited", func(t *testing.T, dir string) {
			sqlExecIn(t, filepath.Join(dir, EventsFile), `UPDATE postings SET entries = CAST(entries AS BLOB) || x'00' WHERE field = 3`)
		}, `do not match the event rows (20 entries, the rows give 20): queries by it return wrong events`},
		{"edited body", func(t *testing.T, dir string) {
			sqlExec(t, dir, `UPDATE batches SET body = CAST(body AS BLOB) || x'00' WHERE seq = 2 AND agent_id = 'host-2'`)
		}, "body_mismatch"},
		{"deleted batch", func(t *testing.T, dir string) {
			var batch int64
			sqlQueryRow(t, filepath.Join(dir, StoreFile), `SELECT id FROM batches WHERE seq = 1 AND agent_id = 'host-1'`, &batch)
			sqlExecIn(t, filepath.Join(dir, EventsFile), `DELETE FROM events WHERE batch_id = ?`, batch)
			sqlExec(t, dir, `DELETE FROM batches WHERE id = ?`, batch)
		}, "no stored batch has this log index"},
		{"edited tile", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, LogDir, layout.TilePath(0, 0, 9)), 5)
		}, "log tiles"},
		{"edited entry bundle", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, LogDir, layout.EntriesPath(0, 9)), 100)
		}, "log tiles"},
		{"edited checkpoint", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, LogDir, "checkpoint"), 30)
		}, "checkpoint: signature or format invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.CopyFS(dir, os.DirFS(dataDir)); err != nil {
				t.Fatal(err)
			}
			tt.tamper(t, dir)
			rep := auditDataDir(t, dir, nil)
			t.Logf("problems: %q", rep.Problems)
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), tt.want) {
				t.Fatalf("want a problem containing %q, got %q", tt.want, rep.Problems)
			}
		})
	}
	_ = signer.Accepted
}
