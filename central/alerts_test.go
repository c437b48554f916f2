package central

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// TestAlertRulesAndBuiltins: rules from central.hcl run over stored
// events and reach a webhook; a fork reaches it as a built-in alert.
func TestAlertRulesAndBuiltins(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer hook.Close()
	src := fmt.Sprintf(`
alert "wheel_grant" {
  when     = event.action == "group.member.add" && event.target.group.name == "wheel"
  severity = "high"
  notify   = ["hook"]
}
notifier "webhook" "hook" {
  url    = %q
  format = "json"
}
`, hook.URL)
	tc := startTestCentralWith(t, func(cfg *Config) {
		f, diags := hclconfig.ParseBytes("central.hcl", []byte(src))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		content, diags := f.Body.Content(FileSchema)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		cfg.EvalContext = hclconfig.EvalContext(".", nil)
		ac, diags := alerts.DecodeConfig(content.Blocks, cfg.EvalContext)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		cfg.Alerts = ac
	}, "host-1")
	c := tc.agents["host-1"].chain(t, filepath.Join(tc.dir, "chain"))
	forkDir := filepath.Join(tc.dir, "chain-fork")
	copyDir(t, filepath.Join(tc.dir, "chain"), forkDir)
	if status, r := tc.post(t, seal(t, c, "grant", 2)); status != 200 {
		t.Fatalf("%d %+v", status, r)
	}
	fork := seal(t, tc.agents["host-1"].chain(t, forkDir), "fork", 1)
	if status, _ := tc.post(t, fork); status != http.StatusConflict {
		t.Fatalf("fork status %d", status)
	}
	hasRule := func(rule string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			if strings.Contains(fmt.Sprint(m), rule) {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !(hasRule("wheel_grant") && hasRule(alerts.BuiltinFork)) {
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The webhook may hear of the first grant before the second alert row
	// is stored: wait for the rows, then check nothing more comes.
	kindsStored := func() map[string]int {
		al, err := tc.srv.Store().Alerts(context.Background(), 100)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, a := range al {
			kinds[a.Kind]++
		}
		return kinds
	}
	for kinds := kindsStored(); kinds["wheel_grant"] < 2 || kinds["fork"] < 1; kinds = kindsStored() {
		if time.Now().After(deadline) {
			t.Fatalf("alert rows by kind: %v", kinds)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	// The rule fired once per matching event (2 events), the fork is
	// recorded once (with its evidence), not again by the engine.
	if kinds := kindsStored(); kinds["wheel_grant"] != 2 || kinds["fork"] != 1 || kinds[alerts.BuiltinFork] != 0 {
		t.Fatalf("alert rows by kind: %v", kinds)
	}
}
