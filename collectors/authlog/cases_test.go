package authlog

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

func eventsOf(recs []collectors.Record) []event.Event {
	out := make([]event.Event, len(recs))
	for i, r := range recs {
		out[i] = r.Event
	}
	return out
}

func parseString(t *testing.T, p *Parser, s string) []event.Event {
	t.Helper()
	evs := eventsOf(parseAll(t, p, "auth.log", []byte(s)))
	for _, e := range evs {
		if err := event.Validate(&e); err != nil {
			t.Errorf("invalid event %+v: %v", e, err)
		}
	}
	return evs
}

// The same run written in the three layouts gives the same events: same
// ids (time to the second), actions, targets, actors and changes.
func TestLayoutsAgree(t *testing.T) {
	for _, base := range []string{"debian", "debian_sudo_su", "rsyslog_live"} {
		var sets [][]event.Event
		for _, l := range []string{"traditional", "rfc3339", "rfc5424"} {
			data, err := os.ReadFile("testdata/" + base + "_" + l + ".log")
			if err != nil {
				t.Fatal(err)
			}
			sets = append(sets, eventsOf(parseAll(t, testParser(t, nil), "x", data)))
		}
		for i := 1; i < len(sets); i++ {
			if len(sets[i]) != len(sets[0]) {
				t.Fatalf("%s: layout %d gives %d events, traditional %d", base, i, len(sets[i]), len(sets[0]))
			}
			for j := range sets[0] {
				a, b := sets[0][j], sets[i][j]
				if a.ID != b.ID || a.Action != b.Action || !a.Time.Equal(b.Time.Truncate(time.Second)) ||
					mustJSON(a.Target) != mustJSON(b.Target) || mustJSON(a.Actor) != mustJSON(b.Actor) ||
					mustJSON(a.Changes) != mustJSON(b.Changes) || a.Origin != b.Origin || a.Outcome != b.Outcome {
					t.Errorf("%s event %d differs between layouts:\n%s\n%s", base, j, mustJSON(a), mustJSON(b))
				}
			}
		}
	}
}

func mustJSON(v any) string {
	b, err := jsonMarshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestUnrelatedLinesGiveNothing(t *testing.T) {
	for _, l := range []layout{layoutTraditional, layoutRFC3339, layoutRFC5424} {
		var b strings.Builder
		for i, n := range noiseBodies {
			b.WriteString(formatLine(l, 4000+i, n.prog, n.pid, n.msg) + "\n")
		}
		// Account tools saying things that are not changes.
		for _, s := range []string{
			"Nov 25 17:37:39 vm groupmems[20680]: pam_unix(groupmems:auth): auth could not identify password for [root]",
			"Nov 25 17:37:39 vm groupmems[20680]: Authentication failure",
			"Nov 25 17:37:45 vm vipw[21438]: file /etc/passwd.edit edited",
			"Nov 25 17:38:00 vm useradd[1]: useradd defaults: GROUP=100, HOME=/home, SHELL=/bin/sh, INACTIVE=-1, EXPIRE=, SKEL=/etc/skel, CREATE_MAIL_SPOOL=no, LOG_INIT=yes",
			"Nov 25 17:38:01 vm usermod[2]: failed to unlock /etc/passwd",
			"Nov 25 17:38:02 vm passwd[3]: pam_unix(passwd:session): session opened for user root(uid=0) by (uid=0)",
			"Nov 25 17:38:53 vm sudo:   pt_eve : user NOT in sudoers ; TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd x",
			"Nov 25 17:39:30 vm sg[3359]: Invalid password for group 'pt_dev' from 'pt_alice'",
			"Nov 25 17:39:31 vm su[3140]: FAILED SU (to pt_alice) pt_admin on pts/0",
			"Nov 25 17:39:32 vm rsyslogd: last message repeated 3 times",
			"Nov 25 17:39:33 vm sudo: @cee:{\"sudo\":{\"accept\":{\"command\":\"/usr/sbin/useradd x\"}}}",
		} {
			b.WriteString(s + "\n")
		}
		var problems problemLog
		if evs := parseString(t, testParser(t, &problems), b.String()); len(evs) != 0 {
			t.Errorf("layout %d: unrelated lines gave %d events, first %s", l, len(evs), mustJSON(evs[0]))
		}
		if ps := problems.all(); len(ps) != 0 {
			t.Errorf("layout %d: unrelated lines gave problems: %v", l, ps)
		}
	}
}

// Either twin line alone gives the id of the merged event, so a re-read
// from between them dedupes.
func TestTwinLineAloneHasMergedID(t *testing.T) {
	merged := parseString(t, testParser(t, nil), "Nov 25 17:37:15 vm usermod[20131]: add 'pt_bob' to group 'pt_ops'\nNov 25 17:37:15 vm usermod[20131]: add 'pt_bob' to shadow group 'pt_ops'\n")
	alone := parseString(t, testParser(t, nil), "Nov 25 17:37:15 vm usermod[20131]: add 'pt_bob' to shadow group 'pt_ops'\n")
	if len(merged) != 1 || len(alone) != 1 {
		t.Fatalf("got %d and %d events, want 1 and 1", len(merged), len(alone))
	}
	if merged[0].ID != alone[0].ID {
		t.Errorf("ids differ: %s vs %s", merged[0].ID, alone[0].ID)
	}
	if n := strings.Count(merged[0].Raw, "\n") + 1; n != 2 {
		t.Errorf("merged raw has %d lines, want 2", n)
	}
	again := parseString(t, testParser(t, nil), "Nov 25 17:37:15 vm usermod[20131]: add 'pt_bob' to group 'pt_ops'\nNov 25 17:37:15 vm usermod[20131]: add 'pt_bob' to shadow group 'pt_ops'\n")
	if again[0].ID != merged[0].ID {
		t.Error("the same lines read twice give different ids")
	}
}

func TestMessageVariants(t *testing.T) {
	cases := []struct {
		name, in string
		action   event.Action
		check    func(t *testing.T, e event.Event)
	}{
		{"future trailing field", "Nov 25 17:38:40 vm useradd[1]: new user: name=u1, UID=1001, GID=1001, home=/home/u1, shell=/bin/bash, from=/dev/pts/1, selinux=user_u", event.UserCreate,
			func(t *testing.T, e event.Event) {
				if c := change(e, "shell"); c.New != "/bin/bash" {
					t.Errorf("shell = %q", c.New)
				}
				if e.Origin.TTY != "pts/1" {
					t.Errorf("tty = %q", e.Origin.TTY)
				}
			}},
		{"rhel7 without from", "Feb 22 11:47:05 localhost useradd[6995]: new user: name=apache, UID=48, GID=48, home=/usr/share/httpd, shell=/sbin/nologin", event.UserCreate,
			func(t *testing.T, e event.Event) {
				if c := change(e, "shell"); c.New != "/sbin/nologin" {
					t.Errorf("shell = %q", c.New)
				}
				if *e.Target.User.UID != 48 {
					t.Errorf("uid = %d", *e.Target.User.UID)
				}
			}},
		{"escaped trailing newline", "Nov 25 17:39:45 vm userdel[3611]: delete user 'pt_bob'#012", event.UserDelete, nil},
		{"no host", "Nov 25 17:39:45 userdel[3611]: delete user 'pt_bob'", event.UserDelete,
			func(t *testing.T, e event.Event) {
				if e.Origin.Host != "testhost" {
					t.Errorf("host = %q, want the configured hostname", e.Origin.Host)
				}
			}},
		{"usermod inactive", "Nov 25 17:39:45 vm usermod[9]: change user 'u' inactive from '-1' to '30'", event.UserModify,
			func(t *testing.T, e event.Event) {
				if c := change(e, "inactive"); c.Old != "-1" || c.New != "30" {
					t.Errorf("change = %+v", c)
				}
			}},
		{"gpasswd gshadow suffix", "Nov 25 17:39:45 vm gpasswd[9]: user u added by root to group g in /etc/gshadow", event.GroupMemberAdd, nil},
		{"gpasswd empty members", "Nov 25 17:39:45 vm gpasswd[9]: members of group sudo set by root to ", event.GroupModify,
			func(t *testing.T, e event.Event) {
				if c := change(e, "members"); c.New != "" || c.Field != "members" {
					t.Errorf("change = %+v", c)
				}
				if e.Severity != event.SeverityHigh {
					t.Errorf("severity = %s, want high for a privileged group", e.Severity)
				}
			}},
		{"groupmod password", "Nov 25 17:39:45 vm groupmod[9]: group changed in /etc/gshadow (group g, new password)", event.GroupModify,
			func(t *testing.T, e event.Event) {
				if c := change(e, "password"); c.New != event.Redacted {
					t.Errorf("change = %+v", c)
				}
			}},
		{"rfc5424 structured data", `<86>1 2026-11-25T17:38:40.711707+00:00 vm useradd 23257 - [meta sequenceId="7" note="a \] b"] new group: name=g1, GID=7`, event.GroupCreate, nil},
		{"rfc3339 Z zone", "2026-11-25T17:38:40Z vm groupdel[7]: group 'g' removed", event.GroupDelete, nil},
		{"journald short with sudo pid", "Nov 25 17:38:40 vm chfn[7]: changed user 'pt_carol' information", event.UserModify, nil},
		{"sysadmin path tag", "Nov 25 17:38:40 vm /usr/sbin/groupdel[7]: group 'g' removed", event.GroupDelete, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var problems problemLog
			evs := parseString(t, testParser(t, &problems), c.in+"\n")
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1 (problems %v)", len(evs), problems.all())
			}
			if evs[0].Action != c.action {
				t.Errorf("action = %s, want %s", evs[0].Action, c.action)
			}
			if c.check != nil {
				c.check(t, evs[0])
			}
		})
	}
}

func change(e event.Event, field string) event.Change {
	for _, c := range e.Changes {
		if c.Field == field {
			return c
		}
	}
	return event.Change{}
}

func TestSudoAttribution(t *testing.T) {
	cases := []struct {
		name, in  string
		wantActor string
	}{
		{"matching", "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd -m bob\nNov 25 17:38:40 vm useradd[5]: new user: name=bob, UID=1, GID=1, home=/home/bob, shell=/bin/sh, from=/dev/pts/1\n", "pt_admin"},
		{"other target", "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd -m bob\nNov 25 17:38:40 vm useradd[5]: new user: name=alice, UID=1, GID=1, home=/home/alice, shell=/bin/sh, from=none\n", ""},
		{"other tool", "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/usermod -L bob\nNov 25 17:38:40 vm useradd[5]: new user: name=bob, UID=1, GID=1, home=/home/bob, shell=/bin/sh, from=none\n", ""},
		{"other host", "Nov 25 17:38:40 db sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd bob\nNov 25 17:38:40 vm useradd[5]: new user: name=bob, UID=1, GID=1, home=/home/bob, shell=/bin/sh, from=none\n", ""},
		{"too old", "Nov 25 17:38:20 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd bob\nNov 25 17:38:40 vm useradd[5]: new user: name=bob, UID=1, GID=1, home=/home/bob, shell=/bin/sh, from=none\n", ""},
		{"refused", "Nov 25 17:38:40 vm sudo: pt_admin : command not allowed ; TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd bob\nNov 25 17:38:40 vm useradd[5]: new user: name=bob, UID=1, GID=1, home=/home/bob, shell=/bin/sh, from=none\n", ""},
		{"extra sudo fields", "Nov 25 17:38:40 vm sudo: pt_admin : HOST=vm ; TTY=pts/0 ; CHROOT=/ ; PWD=/tmp ; USER=root ; GROUP=root ; TSID=000001 ; COMMAND=/usr/sbin/useradd bob\nNov 25 17:38:40 vm useradd[5]: new user: name=bob, UID=1, GID=1, home=/home/bob, shell=/bin/sh, from=none\n", "pt_admin"},
		{"used once per process", "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/userdel bob\nNov 25 17:38:40 vm userdel[5]: delete user 'bob'\nNov 25 17:38:41 vm userdel[6]: delete user 'bob'\n", "pt_admin,"},
		{"adduser wrapper", "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/adduser --disabled-password --gecos  pt_carol\n" +
			"Nov 25 17:38:40 vm groupadd[20801]: group added to /etc/group: name=pt_carol, GID=1003\n" +
			"Nov 25 17:38:40 vm groupadd[20801]: group added to /etc/gshadow: name=pt_carol\n" +
			"Nov 25 17:38:40 vm groupadd[20801]: new group: name=pt_carol, GID=1003\n" +
			"Nov 25 17:38:40 vm useradd[20807]: new user: name=pt_carol, UID=1003, GID=1003, home=/home/pt_carol, shell=/bin/bash, from=/dev/pts/1\n" +
			"Nov 25 17:38:41 vm chfn[20815]: changed user 'pt_carol' information\n" +
			"Nov 25 17:38:41 vm gpasswd[20818]: members of group users set by root to pt_carol\n" +
			"Nov 25 17:38:50 vm useradd[20900]: new user: name=pt_other, UID=1004, GID=1004, home=/home/pt_other, shell=/bin/bash, from=none\n", "pt_admin,pt_admin,pt_admin,pt_admin,"},
		{"deluser from group", "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/deluser pt_bob sudo\n" +
			"Nov 25 17:38:40 vm gpasswd[20840]: members of group sudo set by root to pt_admin\n", "pt_admin"},
		{"self-service passwd", "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/passwd\nNov 25 17:38:42 vm passwd[5]: pam_unix(passwd:chauthtok): password changed for root\n", "pt_admin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs := parseString(t, testParser(t, nil), c.in)
			var got []string
			for _, e := range evs {
				got = append(got, e.Actor.Name)
				if e.Actor.Name != "" && (e.Actor.Auth != "sudo" || e.Actor.OnBehalfOf != "root" || e.Actor.Type != event.ActorHuman) {
					t.Errorf("sudo actor = %+v", e.Actor)
				}
				if e.Actor.Name == "" && e.Actor.Type != event.ActorUnknown {
					t.Errorf("unattributed actor = %+v", e.Actor)
				}
			}
			if strings.Join(got, ",") != c.wantActor {
				t.Errorf("actors = %q, want %q", strings.Join(got, ","), c.wantActor)
			}
		})
	}
}

func TestPasswordsNeverLeak(t *testing.T) {
	in := "Nov 25 17:38:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/usermod -p $6$rounds=5000$saltsalt$hashhashhash bob\n" +
		"Nov 25 17:38:40 vm usermod[5]: change user 'bob' password\n" +
		"Nov 25 17:38:41 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/useradd --password=plaintextsecret carol\n" +
		"Nov 25 17:38:41 vm useradd[6]: new user: name=carol, UID=7, GID=7, home=/home/carol, shell=/bin/sh, from=none\n"
	evs := parseString(t, testParser(t, nil), in)
	if len(evs) != 2 {
		t.Fatalf("got %d events", len(evs))
	}
	for _, e := range evs {
		s := mustJSON(e)
		if strings.Contains(s, "hashhash") || strings.Contains(s, "plaintextsecret") || strings.Contains(s, "saltsalt") {
			t.Errorf("secret in event: %s", s)
		}
		if e.Actor.Name != "pt_admin" {
			t.Errorf("actor = %+v", e.Actor)
		}
	}
	if evs[0].Action != event.PasswordReset || change(evs[0], "password").New != event.Redacted {
		t.Errorf("usermod -p: %s", mustJSON(evs[0]))
	}
}

func TestProblemsAreReportedAndSkipped(t *testing.T) {
	long := "Nov 25 17:38:40 vm sshd[1]: " + strings.Repeat("x", 70<<10)
	in := "garbage that is no syslog line\n" +
		long + "\n" +
		"Nov 25 17:38:41 vm useradd[5]: new user: name=bob, UID=notanumber, GID=1, home=/h, shell=/bin/sh\n" +
		"Feb 30 17:38:41 vm userdel[5]: delete user 'bob'\n" +
		"\x00\x01\xff\n" +
		"Nov 25 17:38:42 vm userdel[6]: delete user 'carol'\n" +
		long // no newline at the end: the last line counts at the end of input
	var problems problemLog
	evs := parseString(t, testParser(t, &problems), in)
	if len(evs) != 1 || evs[0].Target.User.Name != "carol" {
		t.Fatalf("events = %s", mustJSON(evs))
	}
	ps := problems.all()
	wantWhere := []string{"auth.log:1", "auth.log:2", "auth.log:3", "auth.log:4", "auth.log:5", "auth.log:7"}
	if len(ps) != len(wantWhere) {
		t.Fatalf("problems = %v", ps)
	}
	for i, p := range ps {
		if p.Where != wantWhere[i] {
			t.Errorf("problem %d at %s, want %s (%s)", i, p.Where, wantWhere[i], p.Reason)
		}
		if len(p.Sample) > 200 {
			t.Errorf("problem sample is %d bytes", len(p.Sample))
		}
	}
	if !strings.Contains(ps[1].Reason, "longer than 65536") {
		t.Errorf("long line reason = %q", ps[1].Reason)
	}
	if evs[0].Source.Offset == nil || *evs[0].Source.Offset != int64(strings.Index(in, "Nov 25 17:38:42")) {
		t.Errorf("offset = %v", evs[0].Source.Offset)
	}
}

func TestYearAndZone(t *testing.T) {
	cfg := testConfig()
	cfg.Year = 0
	p, err := NewParser(collectors.Settings{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.opts.now = func() time.Time { return time.Date(2027, 1, 2, 10, 0, 0, 0, time.UTC) }
	evs := parseString(t, p, "Dec 31 23:59:59 vm userdel[1]: delete user 'a'\nJan  1 00:00:01 vm userdel[2]: delete user 'b'\n")
	if len(evs) != 2 || evs[0].Time.Year() != 2026 || evs[1].Time.Year() != 2027 || evs[1].Time.Day() != 1 {
		t.Errorf("inferred years: %v", mustJSON(evs))
	}
	cfg = testConfig() // year = 2026, fixed
	p = testParser(t, nil)
	evs = parseString(t, p, "Dec 31 23:59:59 vm userdel[1]: delete user 'a'\nJan  1 00:00:01 vm userdel[2]: delete user 'b'\n")
	if len(evs) != 2 || evs[0].Time.Year() != 2026 || evs[1].Time.Year() != 2027 {
		t.Errorf("fixed year over new year: %v", mustJSON(evs))
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	cfg.Location = berlin
	p, err = NewParser(collectors.Settings{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	evs = parseString(t, p, "Nov 25 18:37:08 vm userdel[1]: delete user 'a'\n")
	if want := time.Date(2026, 11, 25, 17, 37, 8, 0, time.UTC); len(evs) != 1 || !evs[0].Time.Equal(want) || evs[0].Time.Location() != time.UTC {
		t.Errorf("Berlin time = %v, want %v", evs[0].Time, want)
	}
}

func TestSuAttribution(t *testing.T) {
	open := "Nov 25 17:39:10 vm su[3070]: (to root) pt_admin on pts/0\n"
	open2 := "Nov 25 17:39:11 vm su[3071]: (to root) pt_ops on pts/3\n"
	closeLine := "Nov 25 17:39:14 vm su[3070]: pam_unix(su:session): session closed for user root\n"
	change := func(ts string) string { return "Nov 25 " + ts + " vm usermod[9]: lock user 'pt_eve' password\n" }
	cases := []struct {
		name, in, actor string
	}{
		{"inside the session", open + change("17:39:12"), "pt_admin"},
		{"after it closed", open + closeLine + change("17:39:15"), ""},
		{"two sessions open", open + open2 + change("17:39:12"), ""},
		{"other host", strings.Replace(open, " vm ", " db ", 1) + change("17:39:12"), ""},
		{"stale session", open + "Nov 26 06:00:00 vm usermod[9]: lock user 'pt_eve' password\n", ""},
		{"non-root session, other user's change", "Nov 25 17:39:10 vm su[3070]: (to pt_alice) pt_admin on pts/0\n" + change("17:39:12"), ""},
		{"non-root session, own chsh", "Nov 25 17:39:10 vm su[3070]: (to pt_alice) pt_admin on pts/0\nNov 25 17:39:12 vm chsh[3110]: changed user 'pt_alice' shell to '/bin/bash'\n", "pt_admin"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			evs := parseString(t, testParser(t, nil), c.in)
			if len(evs) != 1 {
				t.Fatalf("got %d events", len(evs))
			}
			a := evs[0].Actor
			if a.Name != c.actor {
				t.Errorf("actor = %+v, want %q", a, c.actor)
			}
			if c.actor != "" && (a.Auth != "su" || a.Session == "" || !strings.HasPrefix(evs[0].Raw, "Nov 25 17:39:10 vm su[3070]: (to ")) {
				t.Errorf("su actor = %+v, raw %q", a, evs[0].Raw)
			}
		})
	}
}

// passwd's "changed by" line is the same for -l, -u, -d, -e; the sudo
// command's option says which it was.
func TestPasswdChangedByRefinedFromSudo(t *testing.T) {
	cases := []struct {
		opt    string
		action event.Action
		field  string
	}{
		{"-l", event.UserLock, ""},
		{"--unlock", event.UserUnlock, ""},
		{"-d", event.UserModify, "password"},
		{"-e", event.UserModify, "password_expiry"},
		{"-x 90", event.UserModify, "password_aging"},
		{"", event.UserModify, "password_settings"},
	}
	for _, c := range cases {
		in := "Nov 25 17:39:40 vm passwd[3420]: password for 'pt_bob' changed by 'root'\n"
		if c.opt != "" {
			in = "Nov 25 17:39:40 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/bin/passwd " + c.opt + " pt_bob\n" + in
		}
		evs := parseString(t, testParser(t, nil), in)
		if len(evs) != 1 || evs[0].Action != c.action || (c.field != "" && change(evs[0], c.field).Field == "") {
			t.Errorf("passwd %s: %s", c.opt, mustJSON(evs))
		}
		if c.opt != "" && evs[0].Actor.Name != "pt_admin" {
			t.Errorf("passwd %s: actor %+v", c.opt, evs[0].Actor)
		}
	}
}
