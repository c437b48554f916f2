package central

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
)

// TestAlertRulesResumeAfterCrash: batches indexed but not evaluated when
// central stopped (a crash between the index commit and the rules) are
// evaluated at the next start, once; and rules added to a central with
// history do not fire on that history.
func TestAlertRulesResumeAfterCrash(t *testing.T) {
	rc := startReceivers(t)
	rule := `
alert "wheel_grant" {
  when   = event.action == "group.member.add" && event.target.group.name == "wheel"
  notify = ["hook"]
}
` + rc.notifierHCL()
	// First run without rules: history.
	tc := startTestCentralWith(t, nil, "host-1")
	c := tc.agents["host-1"].chain(t, filepath.Join(tc.dir, "chain"))
	if status, _ := tc.post(t, seal(t, c, "old", 3)); status != 200 {
		t.Fatal(status)
	}
	// Rules added: the history does not fire, a new grant does.
	withAlertConfig(t, rule)(tc.cfg)
	tc.restart(t)
	tc.postEvaluated(t, sealAt(t, c, "new", 1, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)))
	if got := tc.alertsByRule(t, "")["wheel_grant"]; len(got) != 1 || got[0].Events[0].ID != "new-0" {
		t.Fatalf("after adding the rule: %+v", got)
	}
	// A batch is indexed, then central "crashes" before the rules see
	// it: rewind the saved watermark and drop the alerts it raised.
	tc.postEvaluated(t, sealAt(t, c, "crash", 2, time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(tc.cfg.Central.DataDir, AlertStateFile)
	raw, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	st["through"] = json.RawMessage("2") // batches 1 (history) and 2 (new) were evaluated
	raw, _ = json.Marshal(st)
	if err := os.WriteFile(statePath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(tc.cfg.Central.DataDir, StoreFile))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`DELETE FROM alerts WHERE details LIKE '%"crash-%'`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("deleted %d alerts of the crashed batch, want 2", n)
	}
	rc.mu.Lock()
	rc.hook = map[string][]alerts.Alert{}
	rc.mu.Unlock()
	tc.restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, _ := rc.counts()
		if h["wheel_grant"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook after restart: %v", h)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := tc.alertsByRule(t, "")["wheel_grant"]
	ids := map[string]int{}
	for _, a := range got {
		for _, e := range a.Events {
			ids[e.ID]++
		}
	}
	if len(got) != 3 || ids["new-0"] != 1 || ids["crash-0"] != 1 || ids["crash-1"] != 1 {
		t.Fatalf("alerts after resuming: %v", ids)
	}
	// Only the un-evaluated batch was evaluated again.
	time.Sleep(200 * time.Millisecond)
	if h, _ := rc.counts(); h["wheel_grant"] != 2 {
		t.Fatalf("webhook got %v", h)
	}
}
