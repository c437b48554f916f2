package accesslog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/conn"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldaptest"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/testenv"
)

// Passwords set during the tests; none may appear in any event.
const (
	alicePW1 = "AliceInit-Pw1!"
	alicePW2 = "AliceSelf-Pw2!"
	bobPW1   = "BobInit-Pw1!"
	bobPW2   = "BobReset-Pw3!"
	carolPW  = "CarolPlain-Pw4!"
)

var testSecrets = []string{alicePW1, alicePW2, bobPW1, bobPW2, carolPW, testenv.SlapdReaderPW, testenv.SlapdAdminPW, "{SSHA}", "{SHA"}

const sudoDN = "cn=sudo,ou=groups,dc=example,dc=com"

func testConfig(s *testenv.Slapd) *Config {
	return &Config{
		Common: conn.Common{
			URL: s.URL, BindDN: testenv.SlapdReaderDN, BindPassword: testenv.SlapdReaderPW,
			BaseDN: DefaultBaseDN, PageSize: 50, PrivilegedGroups: []string{sudoDN},
		},
		PollInterval: 200 * time.Millisecond,
	}
}

// running is a collector run in the background.
type running struct {
	logs   *lockedBuf
	cancel context.CancelFunc
	done   chan error
	sink   *sink
	probs  *problems
}

func startCollector(t *testing.T, cfg *Config, start collectors.Position) *running {
	t.Helper()
	probs := &problems{}
	logs := &lockedBuf{}
	set := collectors.Settings{Type: Type, Name: "test", Problems: probs,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if os.Getenv("PROVTRAIL_TEST_LOG") != "" {
		set.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, logs), nil))
	}
	c, err := New(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.MinBackoff, c.MaxBackoff = 50*time.Millisecond, 300*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{logs: logs, cancel: cancel, done: make(chan error, 1), sink: &sink{}, probs: probs}
	go func() { r.done <- c.Run(ctx, start, r.sink) }()
	t.Cleanup(r.stop)
	return r
}

// lockedBuf collects log output from the collector goroutine.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *running) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	r.cancel = nil
}

func (r *running) lastPosition() collectors.Position {
	recs := r.sink.Records()
	if len(recs) == 0 {
		return nil
	}
	return recs[len(recs)-1].Position
}

// waitFor waits until the sink holds n events.
func waitFor(t *testing.T, s *sink, n int) []event.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		evs := s.Events()
		if len(evs) >= n {
			time.Sleep(300 * time.Millisecond) // catch extras
			return s.Events()
		}
		if time.Now().After(deadline) {
			var got []string
			for _, e := range evs {
				got = append(got, summary(e))
			}
			t.Fatalf("got %d events, want %d:\n%s", len(evs), n, strings.Join(got, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dirClient makes changes as a given identity.
type dirClient struct {
	t *testing.T
	c *ldap.Conn
}

func dial(t *testing.T, s *testenv.Slapd, dn, pw string) *dirClient {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(dn, pw); err != nil {
		t.Fatalf("bind %s: %v", dn, err)
	}
	t.Cleanup(func() { c.Close() })
	return &dirClient{t: t, c: c}
}

func (d *dirClient) add(dn string, attrs map[string][]string) {
	d.t.Helper()
	req := ldap.NewAddRequest(dn, nil)
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		req.Attribute(k, attrs[k])
	}
	if err := d.c.Add(req); err != nil {
		d.t.Fatalf("add %s: %v", dn, err)
	}
}

func (d *dirClient) modify(dn string, f func(*ldap.ModifyRequest)) error {
	req := ldap.NewModifyRequest(dn, nil)
	f(req)
	return d.c.Modify(req)
}

func userAttrs(uid, pw string, n int) map[string][]string {
	return map[string][]string{
		"objectClass":   {"inetOrgPerson", "posixAccount"},
		"uid":           {uid},
		"cn":            {uid + " Example"},
		"sn":            {"Example"},
		"uidNumber":     {fmt.Sprint(10000 + n)},
		"gidNumber":     {fmt.Sprint(10000 + n)},
		"homeDirectory": {"/home/" + uid},
		"userPassword":  {pw},
	}
}

func people(uid string) string { return "uid=" + uid + ",ou=people,dc=example,dc=com" }

func summaries(evs []event.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s %s %s", e.Action, e.Outcome, targetName(e))
	}
	return out
}

func targetName(e event.Event) string {
	var parts []string
	if e.Target.User != nil {
		parts = append(parts, "user="+firstNonEmpty(e.Target.User.Name, e.Target.User.ID))
	}
	if e.Target.Group != nil {
		parts = append(parts, "group="+e.Target.Group.Name)
	}
	return strings.Join(parts, ",")
}

func checkEvents(t *testing.T, evs []event.Event, want []string) {
	t.Helper()
	got := summaries(evs)
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ids := map[string]bool{}
	for _, e := range evs {
		if err := event.Validate(&e); err != nil {
			t.Errorf("invalid event %s: %v", summary(e), err)
		}
		if ids[e.ID] {
			t.Errorf("duplicate event id %s (%s)", e.ID, summary(e))
		}
		ids[e.ID] = true
		js, _ := json.Marshal(e)
		for _, s := range testSecrets {
			if strings.Contains(string(js), s) {
				t.Errorf("event leaks %q: %s", s, js)
			}
		}
	}
}

// scenario1 makes the provisioning changes of the main test and returns
// the events they must produce.
func scenario1(t *testing.T, s *testenv.Slapd) []string {
	admin := dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	admin.add(people("alice"), userAttrs("alice", alicePW1, 1))
	admin.add(people("bob"), userAttrs("bob", bobPW1, 2))
	admin.add(sudoDN, map[string][]string{"objectClass": {"posixGroup"}, "cn": {"sudo"}, "gidNumber": {"27"}})
	admin.add("cn=developers,ou=groups,dc=example,dc=com", map[string][]string{
		"objectClass": {"groupOfNames"}, "cn": {"developers"}, "member": {people("bob")}})
	if err := admin.modify(sudoDN, func(r *ldap.ModifyRequest) { r.Add("memberUid", []string{"alice"}) }); err != nil {
		t.Fatal(err)
	}
	// Self-service password change (RFC 3062) and an admin reset.
	alice := dial(t, s, people("alice"), alicePW1)
	if _, err := alice.c.PasswordModify(ldap.NewPasswordModifyRequest("", alicePW1, alicePW2)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.c.PasswordModify(ldap.NewPasswordModifyRequest(people("bob"), "", bobPW2)); err != nil {
		t.Fatal(err)
	}
	// Alice may not touch the sudo group: a failed privilege grant.
	err := alice.modify(sudoDN, func(r *ldap.ModifyRequest) { r.Add("memberUid", []string{"mallory"}) })
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
		t.Fatalf("alice adding to sudo: %v, want insufficient access", err)
	}
	// Lock and unlock with ppolicy, an attribute change, a replace of the
	// whole member list.
	if err := admin.modify(people("bob"), func(r *ldap.ModifyRequest) {
		r.Replace("pwdAccountLockedTime", []string{"000001010000Z"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := admin.modify(people("bob"), func(r *ldap.ModifyRequest) { r.Delete("pwdAccountLockedTime", nil) }); err != nil {
		t.Fatal(err)
	}
	if err := admin.modify(people("alice"), func(r *ldap.ModifyRequest) { r.Replace("loginShell", []string{"/bin/zsh"}) }); err != nil {
		t.Fatal(err)
	}
	if err := admin.modify("cn=developers,ou=groups,dc=example,dc=com", func(r *ldap.ModifyRequest) {
		r.Replace("member", []string{people("alice")})
	}); err != nil {
		t.Fatal(err)
	}
	if err := admin.c.ModifyDN(ldap.NewModifyDNRequest(people("bob"), "uid=robert", true, "")); err != nil {
		t.Fatal(err)
	}
	if err := admin.c.Del(ldap.NewDelRequest(people("robert"), nil)); err != nil {
		t.Fatal(err)
	}
	if err := admin.modify(sudoDN, func(r *ldap.ModifyRequest) { r.Delete("memberUid", []string{"alice"}) }); err != nil {
		t.Fatal(err)
	}
	return []string{
		"user.create success user=alice",
		"user.create success user=bob",
		"group.create success group=sudo",
		"group.create success group=developers",
		"group.member.add success user=bob,group=developers",
		"group.member.add success user=alice,group=sudo",
		"privilege.grant success user=alice,group=sudo",
		"password.change success user=alice",
		"password.reset success user=bob",
		"group.member.add failure user=mallory,group=sudo",
		"privilege.grant failure user=mallory,group=sudo",
		"user.lock success user=bob",
		"user.unlock success user=bob",
		"user.modify success user=alice",
		"group.member.add success user=alice,group=developers",
		"group.member.remove success user=bob,group=developers",
		"user.rename success user=robert",
		"user.delete success user=robert",
		"group.member.remove success user=alice,group=sudo",
		"privilege.revoke success user=alice,group=sudo",
	}
}

// TestSyncAgainstSlapd tails a real slapd's accesslog with syncrepl while
// real changes are made, then restarts the collector from its last
// position, then kills and restarts slapd under it: every change arrives
// exactly once and no password or hash appears.
func TestSyncAgainstSlapd(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{})
	cfg := testConfig(s)
	r1 := startCollector(t, cfg, nil)
	want := scenario1(t, s)
	evs := waitFor(t, r1.sink, len(want))
	checkEvents(t, evs, want)
	for _, e := range evs {
		if e.Origin.System != "openldap" || e.Origin.Instance != s.URL || e.Source.Collector != Type {
			t.Fatalf("origin/source wrong: %+v %+v", e.Origin, e.Source)
		}
	}
	byAction := func(a event.Action) event.Event {
		for _, e := range evs {
			if e.Action == a {
				return e
			}
		}
		t.Fatalf("no %s", a)
		return event.Event{}
	}
	if a := byAction(event.PasswordChange).Actor; a.ID != people("alice") || a.Type != event.ActorHuman {
		t.Errorf("password.change actor = %+v, want alice", a)
	}
	if a := byAction(event.PasswordReset).Actor; a.ID != testenv.SlapdAdminDN {
		t.Errorf("password.reset actor = %+v, want admin", a)
	}
	if g := byAction(event.PrivilegeGrant); g.Severity != event.SeverityHigh || g.Target.Privileges[0] != sudoDN {
		t.Errorf("privilege.grant = %+v", g)
	}
	if m := byAction(event.UserModify); len(m.Changes) != 1 || m.Changes[0].Field != "loginShell" || m.Changes[0].New != "" {
		t.Errorf("user.modify changes = %+v, want loginShell by name only", m.Changes)
	}
	if len(r1.probs.List()) != 0 {
		t.Errorf("problems: %v", r1.probs.List())
	}
	pos := r1.lastPosition()
	r1.stop()

	// Changes while the collector is down arrive after a restart from its
	// position, and nothing earlier is repeated.
	admin := dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	admin.add(people("carol"), userAttrs("carol", carolPW, 3))
	r2 := startCollector(t, cfg, pos)
	evs2 := waitFor(t, r2.sink, 1)
	checkEvents(t, evs2, []string{"user.create success user=carol"})

	// Kill slapd under the running collector; it reconnects and resumes.
	s.Kill()
	time.Sleep(200 * time.Millisecond)
	s.Start()
	admin = dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	if err := admin.modify(sudoDN, func(r *ldap.ModifyRequest) { r.Add("memberUid", []string{"carol"}) }); err != nil {
		t.Fatal(err)
	}
	evs2 = waitFor(t, r2.sink, 3)
	checkEvents(t, evs2, []string{"user.create success user=carol",
		"group.member.add success user=carol,group=sudo", "privilege.grant success user=carol,group=sudo"})

	// The collector's log lines (it logged the slapd kill) hold no secret.
	for _, r := range []*running{r1, r2} {
		for _, sec := range testSecrets {
			if strings.Contains(r.logs.String(), sec) {
				t.Errorf("log leaks %q: %s", sec, r.logs.String())
			}
		}
	}
	if !strings.Contains(r2.logs.String(), "reconnecting") {
		t.Errorf("the kill was not logged: %s", r2.logs.String())
	}

	// Every id is new relative to the first run.
	seen := map[string]bool{}
	for _, e := range append(evs, evs2...) {
		if seen[e.ID] {
			t.Fatalf("event %s emitted twice across restarts", summary(e))
		}
		seen[e.ID] = true
	}
}

// TestResumeMidEntry resumes from the position after the first of several
// events of one log entry: the rest of that entry is emitted, nothing
// before it.
func TestResumeMidEntry(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{})
	admin := dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	admin.add(sudoDN, map[string][]string{"objectClass": {"posixGroup"}, "cn": {"sudo"}, "gidNumber": {"27"},
		"memberUid": {"alice", "bob"}})
	cfg := testConfig(s)
	r1 := startCollector(t, cfg, nil)
	evs := waitFor(t, r1.sink, 5)
	want := []string{"group.create success group=sudo",
		"group.member.add success user=alice,group=sudo", "privilege.grant success user=alice,group=sudo",
		"group.member.add success user=bob,group=sudo", "privilege.grant success user=bob,group=sudo"}
	checkEvents(t, evs, want)
	mid := r1.sink.Records()[1].Position
	r1.stop()
	r2 := startCollector(t, cfg, mid)
	evs2 := waitFor(t, r2.sink, 3)
	checkEvents(t, evs2, want[2:])
	for i, e := range evs2 {
		if e.ID != evs[i+2].ID {
			t.Fatalf("resumed event %d has id %s, first run had %s", i, e.ID, evs[i+2].ID)
		}
	}
}

// TestPollFallback: without syncprov on cn=accesslog the sync request is
// refused and the collector polls by entryCSN instead, resuming likewise.
func TestPollFallback(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{NoLogSyncprov: true})
	cfg := testConfig(s)
	cfg.PageSize = 2 // several pages per poll
	pw := filepath.Join(t.TempDir(), "reader.pw")
	if err := os.WriteFile(pw, []byte(testenv.SlapdReaderPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.BindPassword, cfg.BindPasswordFile = "", pw
	r1 := startCollector(t, cfg, nil)
	admin := dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	for i, u := range []string{"u1", "u2", "u3", "u4", "u5"} {
		admin.add(people(u), userAttrs(u, "pw-"+u, i))
	}
	evs := waitFor(t, r1.sink, 5)
	checkEvents(t, evs, []string{"user.create success user=u1", "user.create success user=u2",
		"user.create success user=u3", "user.create success user=u4", "user.create success user=u5"})
	pos := r1.lastPosition()
	r1.stop()
	admin.add(people("u6"), userAttrs("u6", "pw-u6", 6))
	r2 := startCollector(t, cfg, pos)
	checkEvents(t, waitFor(t, r2.sink, 1), []string{"user.create success user=u6"})
}

// TestPurgeGap: entries purged by logpurge before the collector read them
// are reported as a gap when it resumes; later changes still arrive.
func TestPurgeGap(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{LogPurge: "00:00:02 00:00:01"})
	cfg := testConfig(s)
	admin := dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	admin.add(people("p1"), userAttrs("p1", "pw-p1", 1))
	r1 := startCollector(t, cfg, nil)
	waitFor(t, r1.sink, 1)
	pos := r1.lastPosition()
	r1.stop()
	admin.add(people("p2"), userAttrs("p2", "pw-p2", 2)) // never read: purged
	// Wait until the purge task has removed p2's entry.
	reader := dial(t, s, testenv.SlapdReaderDN, testenv.SlapdReaderPW)
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := reader.c.Search(ldap.NewSearchRequest("cn=accesslog", ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
			0, 0, false, "(reqDN="+people("p2")+")", []string{"reqDN"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("logpurge did not purge within 20s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	r2 := startCollector(t, cfg, pos)
	admin.add(people("p3"), userAttrs("p3", "pw-p3", 3))
	checkEvents(t, waitFor(t, r2.sink, 1), []string{"user.create success user=p3"})
	probs := r2.probs.List()
	if len(probs) != 1 || !strings.Contains(probs[0].Reason, "gap") {
		t.Fatalf("problems = %v, want one gap", probs)
	}
}

// slowSink blocks its first Emit until released, as a full spool does.
type slowSink struct {
	ldaptest.Sink
	release chan struct{}
	once    sync.Once
}

func (s *slowSink) Emit(ctx context.Context, recs ...collectors.Record) error {
	s.once.Do(func() {
		select {
		case <-s.release:
		case <-ctx.Done():
		}
	})
	return s.Sink.Emit(ctx, recs...)
}

// TestBackpressure: while the emitter blocks, changes pile up on the
// server; none is lost when it resumes.
func TestBackpressure(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{})
	c, err := New(collectors.Settings{Type: Type, Name: "test"}, testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	// A request timeout far below the stall: go-ldap would drop responses
	// not taken within it if it applied to the stream.
	c.opts.Timeout = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sk := &slowSink{release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nil, sk) }()
	admin := dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	const n = 300
	for i := range n {
		admin.add(people(fmt.Sprint("bp", i)), userAttrs(fmt.Sprint("bp", i), "pw", i))
	}
	time.Sleep(time.Second)
	close(sk.release)
	evs := waitFor(t, &sk.Sink, n)
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	for i, e := range evs {
		if want := fmt.Sprint("bp", i); e.Target.User.Name != want {
			t.Fatalf("event %d is for %s, want %s", i, e.Target.User.Name, want)
		}
	}
	cancel()
	<-done
}

// TestTLS reads over StartTLS and over ldaps:// with tls_ca_file, and
// refuses a server its CA file does not vouch for.
func TestTLS(t *testing.T) {
	s := testenv.StartSlapd(t, testenv.SlapdOptions{TLS: true})
	admin := dial(t, s, testenv.SlapdAdminDN, testenv.SlapdAdminPW)
	admin.add(people("tls1"), userAttrs("tls1", "pw-tls1", 1))
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"starttls", func(c *Config) { c.StartTLS, c.TLSCAFile = true, s.CAFile }},
		{"ldaps", func(c *Config) { c.URL, c.TLSCAFile = s.LDAPSURL, s.CAFile }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(s)
			tc.mod(cfg)
			r := startCollector(t, cfg, nil)
			checkEvents(t, waitFor(t, r.sink, 1), []string{"user.create success user=tls1"})
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		cfg := testConfig(s)
		cfg.StartTLS = true // system roots do not know the test CA
		r := startCollector(t, cfg, nil)
		time.Sleep(time.Second)
		r.stop()
		if n := len(r.sink.Events()); n != 0 {
			t.Fatalf("read %d events from an unverified server", n)
		}
		if !strings.Contains(r.logs.String(), "certificate") {
			t.Fatalf("no certificate error logged: %s", r.logs.String())
		}
	})
}
