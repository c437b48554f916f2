package central

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/central/entitlements"
	"github.com/provtrail/provtrail/internal/hclconfig"
	"github.com/provtrail/provtrail/signer"
)

// receivers are a local webhook and a local RFC 5424 syslog (TCP,
// octet-counted) receiver that record the alert rules they are told about.
type receivers struct {
	mu     sync.Mutex
	hook   map[string][]alerts.Alert
	syslog map[string]int
	srv    *httptest.Server
	ln     net.Listener
}

func startReceivers(t *testing.T) *receivers {
	t.Helper()
	rc := &receivers{hook: map[string][]alerts.Alert{}, syslog: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var a alerts.Alert
		if err := json.Unmarshal(b, &a); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
			return
		}
		rc.mu.Lock()
		rc.hook[a.Rule] = append(rc.hook[a.Rule], a)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go rc.readSyslog(t, conn)
		}
	}()
	return rc
}

// readSyslog reads RFC 6587 octet-counted RFC 5424 messages.
func (rc *receivers) readSyslog(t *testing.T, conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || size <= 0 || size > 1<<20 {
			t.Errorf("syslog frame length %q", n)
			return
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		if !bytes.HasPrefix(msg, []byte("<")) || !bytes.Contains(msg, []byte(">1 ")) {
			t.Errorf("not RFC 5424: %q", msg)
		}
		_, rest, ok := bytes.Cut(msg, []byte(` rule="`))
		if !ok {
			t.Errorf("no rule in %q", msg)
			continue
		}
		rule, _, _ := bytes.Cut(rest, []byte(`"`))
		rc.mu.Lock()
		rc.syslog[string(rule)]++
		rc.mu.Unlock()
	}
}

func (rc *receivers) counts() (map[string]int, map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	h := map[string]int{}
	for k, v := range rc.hook {
		h[k] = len(v)
	}
	s := map[string]int{}
	for k, v := range rc.syslog {
		s[k] = v
	}
	return h, s
}

func (rc *receivers) notifierHCL() string {
	return fmt.Sprintf(`
notifier "webhook" "hook" {
  url    = %q
  format = "json"
}
notifier "syslog" "siem" {
  address = %q
}
`, rc.srv.URL, rc.ln.Addr().String())
}

// withAlertConfig decodes src (alert, notifier, variables blocks) into cfg.
func withAlertConfig(t testing.TB, src string) func(*Config) {
	return func(cfg *Config) {
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
	}
}

// restart stops tc's central and starts a new one on the same data_dir
// and configuration.
func (tc *testCentral) restart(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tc.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	srv, err := New(context.Background(), tc.cfg, Options{CheckpointInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	tc.srv, tc.url = srv, "https://"+srv.Addr()
}

type tev struct {
	id, action, actor, user, group, host, outcome string
	privs                                         []string
	at                                            time.Duration
}

var e2eT0 = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)

// sealEvents seals events (times relative to e2eT0) as the chain's next batch.
func sealEvents(t *testing.T, c *signer.Chain, evs ...tev) signer.Batch {
	t.Helper()
	var buf bytes.Buffer
	var first, last time.Time
	for i, e := range evs {
		ts := e2eT0.Add(e.at)
		if i == 0 || ts.Before(first) {
			first = ts
		}
		if ts.After(last) {
			last = ts
		}
		target := map[string]any{}
		if e.user != "" {
			target["user"] = map[string]string{"name": e.user}
		}
		if e.group != "" {
			target["group"] = map[string]string{"name": e.group}
		}
		if len(e.privs) > 0 {
			target["privileges"] = e.privs
		}
		outcome := e.outcome
		if outcome == "" {
			outcome = "success"
		}
		line, err := json.Marshal(map[string]any{
			"id": e.id, "time": ts, "observed_time": ts, "action": e.action, "outcome": outcome, "severity": "medium",
			"actor":  map[string]any{"name": e.actor, "type": "human"},
			"target": target,
			"origin": map[string]string{"system": "linux", "host": e.host, "program": "test"},
			"source": map[string]string{"collector": "authlog"},
		})
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	b, err := c.Seal(context.Background(), buf.Bytes(), signer.Meta{FirstTime: first, LastTime: last}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postEvaluated posts b and waits until the rules have evaluated it.
func (tc *testCentral) postEvaluated(t *testing.T, b signer.Batch) uint64 {
	t.Helper()
	status, r := tc.post(t, b)
	if status != http.StatusOK || r.Verdict != signer.Accepted {
		t.Fatalf("post: %d %+v", status, r)
	}
	max, err := tc.srv.Store().MaxBatchID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tc.srv.EvaluatedThrough() < max {
		if time.Now().After(deadline) {
			t.Fatalf("rules did not evaluate batch %d (through %d)", max, tc.srv.EvaluatedThrough())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return *r.LogIndex
}

func (tc *testCentral) alertsByRule(t *testing.T, query string) map[string][]AlertView {
	t.Helper()
	var resp AlertsResponse
	if status := tc.getJSON(t, "/v1/alerts?limit=1000"+query, &resp); status != 200 {
		t.Fatalf("GET /v1/alerts: %d", status)
	}
	out := map[string][]AlertView{}
	for _, a := range resp.Alerts {
		out[a.Rule] = append(out[a.Rule], a)
	}
	return out
}

// TestAlertRuleKindsAcrossRestart drives real signed batches through the
// HTTPS ingest of a running central and checks that a plain rule, a
// threshold and a sequence each fire exactly when they should, with central
// restarted on the same data_dir between the first and the last event of
// the threshold and of the sequence, and that a local webhook and a local
// syslog receiver get each alert once.
func TestAlertRuleKindsAcrossRestart(t *testing.T) {
	rc := startReceivers(t)
	src := `
variables {
  privileged_groups = ["wheel", "sudo"]
}
alert "privileged_grant" {
  when     = event.action == "group.member.add" && contains(var.privileged_groups, event.target.group.name)
  severity = "high"
  notify   = ["hook", "siem"]
}
alert "grant_burst" {
  when     = event.action == "privilege.grant"
  group_by = [event.actor.name]
  threshold {
    count  = 3
    within = "10m"
  }
  notify = ["hook", "siem"]
}
alert "short_lived_account" {
  sequence {
    first  = event.action == "user.create"
    then   = event.action == "user.delete"
    same   = [event.target.user.name, event.origin.host]
    within = "1h"
  }
  notify = ["hook", "siem"]
}
` + rc.notifierHCL()
	tc := startTestCentralWith(t, withAlertConfig(t, src), "host-1")
	c := tc.agents["host-1"].chain(t, filepath.Join(tc.dir, "chain"))

	// Batch 1: one privileged grant (fires), a non-privileged one (does
	// not), two of alice's three grants, a create whose delete comes after
	// the restart, and a delete of another account (no sequence).
	idx1 := tc.postEvaluated(t, sealEvents(t, c,
		tev{id: "e1", action: "group.member.add", actor: "root", user: "mallory", group: "wheel", host: "h1", at: 0},
		tev{id: "e2", action: "group.member.add", actor: "root", user: "bob", group: "users", host: "h1", at: time.Second},
		tev{id: "e3", action: "privilege.grant", actor: "alice", user: "u1", privs: []string{"s3:*"}, host: "h1", at: 2 * time.Second},
		tev{id: "e4", action: "privilege.grant", actor: "alice", user: "u2", privs: []string{"s3:*"}, host: "h1", at: 3 * time.Second},
		tev{id: "e5", action: "user.create", actor: "root", user: "tmp1", host: "h1", at: 4 * time.Second},
		tev{id: "e6", action: "user.delete", actor: "root", user: "other", host: "h1", at: 5 * time.Second},
		tev{id: "e7", action: "privilege.grant", actor: "carol", user: "u3", privs: []string{"ec2:*"}, host: "h1", at: 6 * time.Second},
	))
	got := tc.alertsByRule(t, "")
	if len(got["privileged_grant"]) != 1 || len(got["grant_burst"]) != 0 || len(got["short_lived_account"]) != 0 {
		t.Fatalf("after batch 1: %v", got)
	}

	tc.restart(t)

	// Batch 2, after the restart: alice's third grant (fires with the two
	// from before the restart), carol's second (does not), the delete of
	// tmp1 (fires the sequence), the delete of tmp1 on another host (no).
	idx2 := tc.postEvaluated(t, sealEvents(t, c,
		tev{id: "e8", action: "privilege.grant", actor: "alice", user: "u4", privs: []string{"s3:*"}, host: "h1", at: 5 * time.Minute},
		tev{id: "e9", action: "privilege.grant", actor: "carol", user: "u5", privs: []string{"ec2:*"}, host: "h1", at: 5*time.Minute + time.Second},
		tev{id: "e10", action: "user.delete", actor: "root", user: "tmp1", host: "h2", at: 6 * time.Minute},
		tev{id: "e11", action: "user.delete", actor: "root", user: "tmp1", host: "h1", at: 7 * time.Minute},
	))
	// Batch 3: nothing fires. alice's window restarted after it fired;
	// carol's third grant is past 10 minutes from her first; tmp2 is
	// deleted after more than an hour; tmp1 is deleted again with no
	// pending create; a failed-looking re-add of a non-privileged group.
	tc.postEvaluated(t, sealEvents(t, c,
		tev{id: "e12", action: "privilege.grant", actor: "alice", user: "u6", privs: []string{"s3:*"}, host: "h1", at: 8 * time.Minute},
		tev{id: "e13", action: "privilege.grant", actor: "carol", user: "u7", privs: []string{"ec2:*"}, host: "h1", at: 11 * time.Minute},
		tev{id: "e14", action: "user.create", actor: "root", user: "tmp2", host: "h1", at: 12 * time.Minute},
		tev{id: "e15", action: "user.delete", actor: "root", user: "tmp1", host: "h1", at: 13 * time.Minute},
		tev{id: "e16", action: "user.delete", actor: "root", user: "tmp2", host: "h1", at: 12*time.Minute + 61*time.Minute},
		tev{id: "e17", action: "group.member.remove", actor: "root", user: "mallory", group: "wheel", host: "h1", at: 74 * time.Minute},
	))

	got = tc.alertsByRule(t, "")
	for rule, want := range map[string]int{"privileged_grant": 1, "grant_burst": 1, "short_lived_account": 1} {
		if len(got[rule]) != want {
			t.Errorf("%s: %d alerts, want %d: %+v", rule, len(got[rule]), want, got[rule])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	burst := got["grant_burst"][0]
	var ids []string
	for _, e := range burst.Events {
		ids = append(ids, fmt.Sprintf("%s@%d", e.ID, e.LogIndex))
	}
	if want := fmt.Sprintf("e3@%d e4@%d e8@%d", idx1, idx1, idx2); strings.Join(ids, " ") != want {
		t.Errorf("grant_burst events %v, want %s", ids, want)
	}
	seq := got["short_lived_account"][0]
	if len(seq.Events) != 2 || seq.Events[0].ID != "e5" || seq.Events[1].ID != "e11" || seq.Events[1].LogIndex != int64(idx2) {
		t.Errorf("short_lived_account events %+v", seq.Events)
	}

	// Each alert reached both receivers exactly once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, s := rc.counts()
		ok := true
		for _, rule := range []string{"privileged_grant", "grant_burst", "short_lived_account"} {
			ok = ok && h[rule] == 1 && s[rule] == 1
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %v, syslog got %v", h, s)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Acknowledgement: by engine id over HTTPS from loopback.
	resp, err := tc.client.Post(tc.url+"/v1/alerts/"+burst.AlertID+"/ack", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var acked AlertView
	json.NewDecoder(resp.Body).Decode(&acked)
	resp.Body.Close()
	if resp.StatusCode != 200 || !acked.Acknowledged || acked.AckedBy != "loopback" {
		t.Fatalf("ack: %d %+v", resp.StatusCode, acked)
	}
	open := tc.alertsByRule(t, "&acknowledged=false")
	if len(open["grant_burst"]) != 0 || len(open["privileged_grant"]) != 1 {
		t.Errorf("open alerts %v", open)
	}
	if high := tc.alertsByRule(t, "&severity=high&rule=privileged_grant"); len(high) != 1 || len(high["privileged_grant"]) != 1 {
		t.Errorf("severity/rule filter %v", high)
	}
	if resp, err := tc.client.Post(tc.url+"/v1/alerts/no-such-alert/ack", "application/json", nil); err != nil || resp.StatusCode != 404 {
		t.Errorf("ack of unknown alert: %v %v", resp.StatusCode, err)
	}

	// Entitlements: mallory was granted wheel then removed; the s3:*
	// privileges are held; drift over the hour lists what is still held.
	var ents EntitlementsResponse
	if tc.getJSON(t, "/v1/entitlements?group=wheel", &ents); len(ents.Entitlements) != 0 {
		t.Errorf("wheel holders after removal: %+v", ents.Entitlements)
	}
	if tc.getJSON(t, "/v1/entitlements?user=u4", &ents); len(ents.Entitlements) != 1 ||
		ents.Entitlements[0].Name != "s3:*" || ents.Entitlements[0].GrantedBy != "alice" || ents.Entitlements[0].LogIndex != int64(idx2) {
		t.Errorf("u4 holdings: %+v", ents.Entitlements)
	}
	var drift EntitlementsResponse
	q := "/v1/entitlements/drift?from=" + e2eT0.Add(4*time.Minute).Format(time.RFC3339) + "&to=" + e2eT0.Add(9*time.Minute).Format(time.RFC3339)
	if status := tc.getJSON(t, q, &drift); status != 200 {
		t.Fatalf("drift: %d", status)
	}
	var users []string
	for _, h := range drift.Entitlements {
		users = append(users, h.User)
	}
	// Sorted by name (ec2:* before s3:*), then user; u7 is after "to".
	if strings.Join(users, ",") != "u5,u4,u6" {
		t.Errorf("drift holders %v", users)
	}
	var wheelDrift EntitlementsResponse
	tc.getJSON(t, "/v1/entitlements/drift?from="+e2eT0.Format(time.RFC3339)+"&to="+e2eT0.Add(time.Minute).Format(time.RFC3339), &wheelDrift)
	found := false
	for _, h := range wheelDrift.Entitlements {
		found = found || (h.Kind == entitlements.KindGroup && h.Name == "wheel" && h.User == "mallory")
	}
	if !found {
		t.Errorf("drift in the first minute should list mallory in wheel (removed only later): %+v", wheelDrift.Entitlements)
	}
}
