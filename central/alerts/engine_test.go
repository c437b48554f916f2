package alerts

import (
	"bufio"
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

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// memSink records stored alerts.
type memSink struct {
	mu     sync.Mutex
	alerts []Alert
}

func (s *memSink) SaveAlert(_ context.Context, a Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, a)
	return nil
}

func (s *memSink) rules() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.alerts {
		out = append(out, a.Rule)
	}
	return out
}

// receivers are a real HTTP webhook endpoint and a real TCP syslog listener.
type receivers struct {
	mu      sync.Mutex
	webhook []string
	syslog  []string
}

func (r *receivers) counts() (int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.webhook), len(r.syslog)
}

func startReceivers(t *testing.T) *receivers {
	t.Helper()
	r := &receivers{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.webhook = append(r.webhook, string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					lenStr, err := br.ReadString(' ')
					if err != nil {
						return
					}
					n, err := strconv.Atoi(strings.TrimSpace(lenStr))
					if err != nil {
						return
					}
					msg := make([]byte, n)
					if _, err := io.ReadFull(br, msg); err != nil {
						return
					}
					r.mu.Lock()
					r.syslog = append(r.syslog, string(msg))
					r.mu.Unlock()
				}
			}()
		}
	}()
	t.Setenv("ONCALL_WEBHOOK", srv.URL)
	t.Setenv("SIEM_ADDRESS", ln.Addr().String())
	return r
}

func loadRules(t *testing.T, path string) (*Config, *hcl.EvalContext) {
	t.Helper()
	f, diags := hclconfig.Parse(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "variables"}, {Type: "alert", LabelNames: []string{"name"}}, {Type: "notifier", LabelNames: []string{"type", "name"}},
	}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := hclconfig.EvalContext(filepath.Dir(path), nil)
	cfg, diags := DecodeConfig(content.Blocks, ctx)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg, ctx
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func ev(n int, action event.Action, at time.Duration, mutate func(*event.Event)) Indexed {
	e := &event.Event{
		ID: fmt.Sprintf("ev-%d", n), Time: t0.Add(at), ObservedTime: t0.Add(at), Action: action,
		Outcome: event.OutcomeSuccess, Actor: event.Actor{Name: "alice"},
		Target: event.Target{User: &event.User{Name: "bob"}},
		Origin: event.Origin{Host: "web-01"}, Source: event.Source{Collector: "authlog"},
	}
	if mutate != nil {
		mutate(e)
	}
	e.Complete()
	return Indexed{Event: e, LogIndex: int64(n)}
}

func group(name string) func(*event.Event) {
	return func(e *event.Event) { e.Target.Group = &event.Group{Name: name} }
}

func TestRulesFireExactlyWhenTheyShould(t *testing.T) {
	recv := startReceivers(t)
	cfg, ctx := loadRules(t, "testdata/rules.hcl")
	state := FileState{Path: filepath.Join(t.TempDir(), "alert-state.json")}
	sink := &memSink{}
	newEngine := func() *Engine {
		e, err := New(context.Background(), cfg, ctx, Options{Sink: sink, State: state, Retry: RetryPolicy{Attempts: 2, Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	eng := newEngine()
	bg := context.Background()
	steps := []struct {
		name   string
		events []Indexed
		want   []string // rules fired by this step, in order
	}{
		{"member add to unprivileged group", []Indexed{ev(1, event.GroupMemberAdd, 0, group("users"))}, nil},
		{"member add to privileged group", []Indexed{ev(2, event.GroupMemberAdd, time.Second, group("sudo"))}, []string{"privileged_grant"}},
		{"member remove from privileged group", []Indexed{ev(3, event.GroupMemberRemove, 2*time.Second, group("sudo"))}, nil},
		{"four grants by alice", []Indexed{
			ev(10, event.PrivilegeGrant, time.Minute, nil), ev(11, event.PrivilegeGrant, 2*time.Minute, nil),
			ev(12, event.PrivilegeGrant, 3*time.Minute, nil), ev(13, event.PrivilegeGrant, 4*time.Minute, nil),
		}, nil},
		{"grant by someone else does not count", []Indexed{ev(14, event.PrivilegeGrant, 5*time.Minute, func(e *event.Event) { e.Actor.Name = "carol" })}, nil},
		{"user created", []Indexed{ev(20, event.UserCreate, 6*time.Minute, func(e *event.Event) { e.Target.User.Name = "tmp1" })}, nil},
		// central restarts here: windows and pending sequences survive.
		{"restart", nil, nil},
		{"fifth grant by alice within 10m", []Indexed{ev(15, event.PrivilegeGrant, 8*time.Minute, nil)}, []string{"grant_burst"}},
		{"sixth grant starts a new window", []Indexed{ev(16, event.PrivilegeGrant, 9*time.Minute, nil)}, nil},
		{"same user deleted on another host", []Indexed{ev(21, event.UserDelete, 7*time.Minute, func(e *event.Event) { e.Target.User.Name = "tmp1"; e.Origin.Host = "db-01" })}, nil},
		{"same user deleted on the same host", []Indexed{ev(22, event.UserDelete, 30*time.Minute, func(e *event.Event) { e.Target.User.Name = "tmp1" })}, []string{"short_lived_account"}},
		{"create then delete after the window", []Indexed{
			ev(23, event.UserCreate, 40*time.Minute, func(e *event.Event) { e.Target.User.Name = "tmp2" }),
			ev(24, event.UserDelete, 40*time.Minute+61*time.Minute, func(e *event.Event) { e.Target.User.Name = "tmp2" }),
		}, nil},
		{"grants spread over more than 10m", []Indexed{
			ev(30, event.PrivilegeGrant, 3*time.Hour, func(e *event.Event) { e.Actor.Name = "dave" }),
			ev(31, event.PrivilegeGrant, 3*time.Hour+4*time.Minute, func(e *event.Event) { e.Actor.Name = "dave" }),
			ev(32, event.PrivilegeGrant, 3*time.Hour+8*time.Minute, func(e *event.Event) { e.Actor.Name = "dave" }),
			ev(33, event.PrivilegeGrant, 3*time.Hour+12*time.Minute, func(e *event.Event) { e.Actor.Name = "dave" }),
			ev(34, event.PrivilegeGrant, 3*time.Hour+16*time.Minute, func(e *event.Event) { e.Actor.Name = "dave" }),
		}, nil},
		{"failure by root", []Indexed{ev(40, event.PasswordChange, 4*time.Hour, func(e *event.Event) { e.Actor.Name = "root"; e.Outcome = event.OutcomeFailure })}, []string{"root_failures"}},
	}
	for _, st := range steps {
		if st.name == "restart" {
			eng.Close()
			eng = newEngine()
			continue
		}
		before := len(sink.rules())
		if err := eng.Evaluate(bg, st.events); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := sink.rules()[before:]
		if strings.Join(got, ",") != strings.Join(st.want, ",") {
			t.Errorf("%s: fired %v, want %v", st.name, got, st.want)
		}
	}
	eng.Close()

	// The alert names the events that fired it, with their log indexes.
	var burst Alert
	for _, a := range sink.alerts {
		if a.Rule == "grant_burst" {
			burst = a
		}
	}
	if len(burst.Events) != 5 || burst.Events[4].ID != "ev-15" || burst.Events[4].LogIndex != 15 || burst.Key != "alice" {
		t.Errorf("grant_burst alert = %+v", burst)
	}

	// Notifications: privileged_grant, grant_burst, short_lived_account to
	// the webhook; privileged_grant to syslog; root_failures to nobody.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if w, s := recv.counts(); w == 3 && s == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if len(recv.webhook) != 3 || len(recv.syslog) != 1 {
		t.Fatalf("webhook got %d, syslog got %d; want 3 and 1", len(recv.webhook), len(recv.syslog))
	}
	var slack map[string]string
	if err := json.Unmarshal([]byte(recv.webhook[0]), &slack); err != nil || !strings.Contains(slack["text"], "privileged_grant") {
		t.Errorf("slack payload = %s", recv.webhook[0])
	}
	if msg := recv.syslog[0]; !strings.HasPrefix(msg, "<83>1 ") || !strings.Contains(msg, `rule="privileged_grant"`) {
		t.Errorf("syslog message = %q", msg)
	}
}

func TestBuiltinAndFailingNotifier(t *testing.T) {
	recv := startReceivers(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "central.hcl")
	writeFileT(t, path, `
notifier "webhook" "broken" {
  url = "http://127.0.0.1:1/nothing-listens-here"
}
notifier "webhook" "oncall" {
  url = env("ONCALL_WEBHOOK")
}
notifier "file" "archive" {
  path = "`+filepath.Join(dir, "alerts.ndjson")+`"
}
`)
	cfg, ctx := loadRules(t, path)
	sink := &memSink{}
	eng, err := New(context.Background(), cfg, ctx, Options{Sink: sink, Retry: RetryPolicy{Attempts: 2, Initial: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Raise(context.Background(), Alert{Rule: BuiltinFork, Agent: "web-01", Summary: "fork at seq 7"}); err != nil {
		t.Fatal(err)
	}
	// The notifier_failing alert is stored before it is handed to the
	// other notifiers: wait for both, or Close may come in between.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if w, _ := recv.counts(); len(sink.rules()) >= 2 && w >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	eng.Close()
	if got := sink.rules(); strings.Join(got, ",") != BuiltinFork+","+BuiltinNotifierFailing {
		t.Errorf("stored alerts %v, want fork then notifier_failing", got)
	}
	if w, _ := recv.counts(); w != 2 {
		t.Errorf("working webhook got %d notifications, want 2 (fork, notifier failing)", w)
	}
	b := readFileT(t, filepath.Join(dir, "alerts.ndjson"))
	if n := strings.Count(b, "\n"); n != 2 || !strings.Contains(b, BuiltinFork) {
		t.Errorf("file notifier wrote %d lines: %s", n, b)
	}
}

func TestRuleDiagnostics(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"unknown field", `alert "x" {
  when = event.target.nope == "a"
}`, `Unsupported attribute`},
		{"unknown function", `alert "x" {
  when = frobnicate(event.action)
}`, `Call to unknown function`},
		{"no condition", `alert "x" {
  severity = "high"
}`, `needs a when condition`},
		{"bad severity", `alert "x" {
  when = true
  severity = "dire"
}`, `severity "dire"`},
		{"unknown notifier", `alert "x" {
  when = true
  notify = ["nobody"]
}`, `which no notifier block defines`},
		{"bad window", `alert "x" {
  when = true
  threshold {
    count = 3
    within = "often"
  }
}`, `Invalid duration`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags := hclconfig.ParseBytes("rules.hcl", []byte(tt.src))
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			content, _ := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "alert", LabelNames: []string{"name"}}}})
			_, diags = DecodeConfig(content.Blocks, hclconfig.EvalContext(".", nil))
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
				t.Fatalf("diags = %v, want %q", diags, tt.want)
			}
			if diags[0].Subject == nil || diags[0].Subject.Filename != "rules.hcl" {
				t.Errorf("diagnostic has no position: %+v", diags[0])
			}
		})
	}
}

func TestPossibleActions(t *testing.T) {
	tests := []struct {
		src  string
		want string
	}{
		{`event.action == "user.create"`, "user.create"},
		{`"user.create" == event.action && event.actor.name == "x"`, "user.create"},
		{`contains(["a", "b"], event.action)`, "a,b"},
		{`event.action == "a" || event.action == "b"`, "a,b"},
		{`event.action == "a" || event.outcome == "failure"`, "*"},
		{`event.outcome == "failure"`, "*"},
		{`(event.action == "a") && contains(var.x, event.target.group.name)`, "a"},
	}
	for _, tt := range tests {
		f, diags := hclconfig.ParseBytes("x.hcl", []byte("when = "+tt.src+"\n"))
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		attrs, _ := f.Body.JustAttributes()
		got := "*"
		if acts := possibleActions(attrs["when"].Expr, nil); acts != nil {
			var names []string
			for a := range acts {
				names = append(names, a)
			}
			slicesSort(names)
			got = strings.Join(names, ",")
		}
		if got != tt.want {
			t.Errorf("%s: %s, want %s", tt.src, got, tt.want)
		}
	}
}
