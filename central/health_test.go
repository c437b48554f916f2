package central

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/central/status"
	"github.com/provtrail/provtrail/signer"
)

// TestSilentAgentReported: an agent that stops sending (heartbeats
// included) is reported silent within its heartbeat interval plus the
// margin, once per silence, to the webhook and syslog receivers; the alert
// is cleared (acknowledged by central) when the agent is heard again.
func TestSilentAgentReported(t *testing.T) {
	rc := startReceivers(t)
	const hb, margin = 400 * time.Millisecond, 400 * time.Millisecond
	tc := startTestCentralWith(t, func(cfg *Config) {
		withAlertConfig(t, rc.notifierHCL())(cfg)
		cfg.Central.SilenceMargin = margin
		cfg.Central.HeartbeatInterval = time.Hour // the agent's own interval wins
		cfg.Agents[0].HeartbeatInterval = hb
	}, "host-1", "host-2")
	c := tc.agents["host-1"].chain(t, filepath.Join(tc.dir, "chain"))
	c2 := tc.agents["host-2"].chain(t, filepath.Join(tc.dir, "chain2"))
	heartbeat := func(c *signer.Chain) time.Time {
		t.Helper()
		if status, r := tc.post(t, sealAt(t, c, "", 0, time.Time{})); status != 200 {
			t.Fatalf("heartbeat: %d %+v", status, r)
		}
		return time.Now()
	}
	// The agent heartbeats on time for a while: no alert.
	var last time.Time
	for range 4 {
		last = heartbeat(c)
		heartbeat(c2)
		time.Sleep(hb / 2)
	}
	if n := len(tc.alertsByRule(t, "")[alerts.BuiltinSilentAgent]); n != 0 {
		t.Fatalf("%d silent alerts while heartbeating", n)
	}
	// Stop the agent: reported within interval + margin (+ one check tick
	// and scheduling slack).
	var got []AlertView
	for len(got) == 0 {
		if time.Since(last) > hb+margin+time.Second {
			t.Fatalf("no silent alert %s after the last heartbeat", time.Since(last))
		}
		time.Sleep(20 * time.Millisecond)
		got = tc.alertsByRule(t, "&rule="+alerts.BuiltinSilentAgent)[alerts.BuiltinSilentAgent]
	}
	after := time.Since(last)
	if after < hb+margin {
		t.Fatalf("reported silent after %s, before interval+margin %s", after, hb+margin)
	}
	t.Logf("silent agent reported %s after its last heartbeat (interval %s + margin %s)", after.Round(time.Millisecond), hb, margin)
	if got[0].Agent != "host-1" || got[0].Acknowledged {
		t.Fatalf("alert %+v", got[0])
	}
	// Once per silence.
	time.Sleep(hb + margin)
	if n := len(tc.alertsByRule(t, "&rule="+alerts.BuiltinSilentAgent)[alerts.BuiltinSilentAgent]); n != 1 {
		t.Fatalf("%d silent alerts for one silence", n)
	}
	// The agent returns: the alert is cleared.
	heartbeat(c)
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := tc.alertsByRule(t, "&rule="+alerts.BuiltinSilentAgent)[alerts.BuiltinSilentAgent]
		if len(a) == 1 && a[0].Acknowledged && a[0].AckedBy == "central: agent reported again" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("silent alert not cleared: %+v", a)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		h, s := rc.counts()
		if h[alerts.BuiltinSilentAgent] == 1 && s[alerts.BuiltinSilentAgent] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receivers: webhook %v syslog %v", h, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// host-2's interval is the central default (1h): never silent here.
	for _, a := range tc.alertsByRule(t, "")[alerts.BuiltinSilentAgent] {
		if a.Agent == "host-2" {
			t.Errorf("host-2 reported silent: %+v", a)
		}
	}
}

// TestStatusReports: an agent's signed status report raises source-gap and
// spool-full alerts once per occurrence; forged, replayed and misaddressed
// reports are refused.
func TestStatusReports(t *testing.T) {
	rc := startReceivers(t)
	tc := startTestCentralWith(t, withAlertConfig(t, rc.notifierHCL()), "host-1", "host-2")
	post := func(agent string, env []byte) (int, StatusResponse) {
		t.Helper()
		resp, err := tc.client.Post(tc.url+"/v1/agents/"+agent+"/status", status.MediaType, bytes.NewReader(env))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sr StatusResponse
		json.NewDecoder(resp.Body).Decode(&sr)
		return resp.StatusCode, sr
	}
	ctx := context.Background()
	since := time.Now().Add(-time.Minute).UTC()
	rep := status.Report{Audience: testAudience, AgentID: "host-1", Problems: []status.Problem{
		{Kind: status.KindSourceGap, Source: "ldap-main", Detail: "gap: changelog purged past the saved position", Since: since},
		{Kind: status.KindSpoolFull, Source: "/var/lib/provtrail-agent/spool", Since: since},
	}}
	env, err := status.Sign(ctx, tc.agents["host-1"].Key, rep)
	if err != nil {
		t.Fatal(err)
	}
	if code, sr := post("host-1", env); code != 200 || sr.Alerts != 2 {
		t.Fatalf("report: %d %+v", code, sr)
	}
	// Replayed bytes: refused.
	if code, _ := post("host-1", env); code != http.StatusConflict {
		t.Fatalf("replay: %d", code)
	}
	// A newer report of the same ongoing problems raises nothing new.
	rep.Created = time.Now().Add(time.Second)
	env2, _ := status.Sign(ctx, tc.agents["host-1"].Key, rep)
	if code, sr := post("host-1", env2); code != 200 || sr.Alerts != 0 {
		t.Fatalf("repeat: %d %+v", code, sr)
	}
	// Signed by another agent's key: refused.
	forged, _ := status.Sign(ctx, tc.agents["host-2"].Key, status.Report{Audience: testAudience, AgentID: "host-1",
		Created: time.Now().Add(2 * time.Second), Problems: []status.Problem{{Kind: status.KindSpoolFull, Since: time.Now()}}})
	if code, _ := post("host-1", forged); code != http.StatusForbidden {
		t.Fatalf("forged: %d", code)
	}
	// Posted under another agent's path: refused.
	if code, _ := post("host-2", env2); code != http.StatusBadRequest {
		t.Fatalf("misaddressed: %d", code)
	}
	// Wrong audience and stale clock: refused.
	wrong, _ := status.Sign(ctx, tc.agents["host-2"].Key, status.Report{Audience: "other", AgentID: "host-2"})
	if code, _ := post("host-2", wrong); code != http.StatusForbidden {
		t.Fatalf("audience: %d", code)
	}
	old, _ := status.Sign(ctx, tc.agents["host-2"].Key, status.Report{Audience: testAudience, AgentID: "host-2", Created: time.Now().Add(-time.Hour)})
	if code, _ := post("host-2", old); code != http.StatusForbidden {
		t.Fatalf("old: %d", code)
	}
	got := tc.alertsByRule(t, "")
	if len(got[alerts.BuiltinSourceGap]) != 1 || len(got[alerts.BuiltinSpoolFull]) != 1 {
		t.Fatalf("alerts %v", got)
	}
	if a := got[alerts.BuiltinSourceGap][0]; a.Agent != "host-1" || a.Details["source"] != "ldap-main" {
		t.Errorf("source gap alert %+v", a)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, s := rc.counts()
		if h[alerts.BuiltinSourceGap] == 1 && h[alerts.BuiltinSpoolFull] == 1 && s[alerts.BuiltinSourceGap] == 1 && s[alerts.BuiltinSpoolFull] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receivers: webhook %v syslog %v", h, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
