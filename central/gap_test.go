package central

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
)

// TestChainGapAlert: a gap not filled within gap_timeout raises one alert
// (not again after a restart), reaching the receivers; a gap filled in
// time raises nothing.
func TestChainGapAlert(t *testing.T) {
	rc := startReceivers(t)
	const timeout = 400 * time.Millisecond
	tc := startTestCentralWith(t, func(cfg *Config) {
		withAlertConfig(t, rc.notifierHCL())(cfg)
		cfg.Central.GapTimeout = timeout
	}, "host-1", "host-2")
	gaps := func() int { return len(tc.alertsByRule(t, "&rule=gap")["gap"]) }

	// host-2: a gap filled within the timeout.
	c2 := tc.agents["host-2"].chain(t, filepath.Join(tc.dir, "chain2"))
	a0, a1, a2 := seal(t, c2, "a0", 1), seal(t, c2, "a1", 1), seal(t, c2, "a2", 1)
	tc.post(t, a0)
	if status, _ := tc.post(t, a2); status != http.StatusAccepted {
		t.Fatalf("gap status %d", status)
	}
	tc.post(t, a1)
	if status, r := tc.post(t, a2); status != 200 {
		t.Fatalf("refill: %d %+v", status, r)
	}

	// host-1: a gap left open.
	c := tc.agents["host-1"].chain(t, filepath.Join(tc.dir, "chain"))
	b0, _, b2 := seal(t, c, "b0", 1), seal(t, c, "b1", 1), seal(t, c, "b2", 1)
	tc.post(t, b0)
	opened := time.Now()
	if status, r := tc.post(t, b2); status != http.StatusAccepted || r.MissingFrom == nil || *r.MissingFrom != 1 {
		t.Fatalf("gap: %d %+v", status, r)
	}
	for gaps() == 0 {
		if time.Since(opened) > timeout+3*time.Second {
			t.Fatal("no gap alert")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := time.Since(opened); d < timeout {
		t.Fatalf("gap alert after %s, before gap_timeout %s", d, timeout)
	}
	time.Sleep(2 * timeout)
	tc.restart(t)
	time.Sleep(3 * timeout)
	got := tc.alertsByRule(t, "&rule=gap")["gap"]
	if len(got) != 1 || got[0].Agent != "host-1" {
		t.Fatalf("gap alerts %+v", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, s := rc.counts()
		if h[alerts.BuiltinGap] == 1 && s[alerts.BuiltinGap] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receivers: webhook %v syslog %v", h, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
