package auditd

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/testenv"
)

// TestRealAuditd runs a real auditd and real shadow-utils tools against a
// scratch root (--root), then parses the audit.log auditd wrote. With
// -update it refreshes testdata/real-chroot.log from the run (the account
// records only), which TestParserGolden then pins.
func TestRealAuditd(t *testing.T) {
	sh := newShadowRoot(t, "useradd", "usermod", "userdel", "groupadd", "groupdel", "gpasswd", "chage")
	a := testenv.StartAuditd(t)
	root, run, ours := sh.root, sh.run, sh.ours
	run("groupadd", "--root", root, "-g", "2000", "pt_ops")
	run("useradd", "--root", root, "-u", "1500", "-G", "pt_ops", "pt_real")
	run("usermod", "--root", root, "-s", "/bin/sh", "pt_real")
	run("usermod", "--root", root, "-p", "$6$c2FsdA$notarealhashbutshapedlikeone0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "pt_real")
	run("usermod", "--root", root, "-L", "pt_real")
	run("chage", "--root", root, "-M", "30", "pt_real")
	run("gpasswd", "--root", root, "-a", "pt_real", "sudo")
	run("gpasswd", "--root", root, "-d", "pt_real", "sudo")
	run("userdel", "--root", root, "pt_real")
	run("groupdel", "--root", root, "pt_ops")
	a.Mark("provtrail test done")

	log, err := os.ReadFile(a.Log)
	if err != nil {
		t.Fatal(err)
	}
	recs, probs := parseFile(t, a.Log)
	if len(probs) != 0 {
		t.Errorf("problems: %q", probs)
	}
	var got []string
	for _, r := range recs {
		e := r.Event
		if !ours[e.Origin.PID] {
			continue
		}
		if err := event.Validate(&e); err != nil {
			t.Errorf("%s: %v", e.Source.EventID, err)
		}
		s := string(e.Action)
		if u := e.Target.User; u != nil {
			if u.UID != nil {
				s += " uid=" + itoa(*u.UID)
			} else {
				s += " user=" + u.Name
			}
		}
		if g := e.Target.Group; g != nil {
			if g.GID != nil {
				s += " gid=" + itoa(*g.GID)
			} else {
				s += " group=" + g.Name
			}
		}
		s += " " + string(e.Outcome)
		got = append(got, s)
		if e.Actor.UID == nil || *e.Actor.UID != 0 || e.Origin.PID == 0 {
			t.Errorf("%s: actor %+v origin %+v", s, e.Actor, e.Origin)
		}
	}
	want := []string{
		"group.create gid=2000 success",    // groupadd's 3 ADD_GROUP records, merged
		"user.create uid=1500 success",     // useradd; -G's "adding user to group" names no group
		"user.modify uid=1500 success",     // usermod -s: "changing user shell"
		"password.change uid=1500 success", // usermod -p: "changing password"
		"user.modify uid=1500 unknown",     // usermod -L: "updating passwd", res=failed on success
		"user.modify uid=1500 success",     // chage -M: "change max age"
		"privilege.grant user=pt_real group=sudo success",
		"privilege.revoke user=pt_real group=sudo success",
		"user.delete uid=1500 success",  // "deleting user entries"
		"group.delete gid=2000 success", // groupdel's 3 DEL_GROUP records, merged
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s\nlog:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), log)
	}
	if *update {
		var keep []string
		for _, l := range strings.Split(string(log), "\n") {
			pid := 0
			if i := strings.Index(l, "): pid="); i >= 0 {
				pid, _ = strconv.Atoi(strings.Fields(l[i+len("): pid="):])[0])
			}
			if typ, _, _ := strings.Cut(strings.TrimPrefix(l, "type="), " "); accountTypes[typ] && ours[pid] {
				keep = append(keep, l)
			}
		}
		if err := os.WriteFile("testdata/real-chroot.log", []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// shadowRoot is a scratch root (--root) for the real shadow-utils tools,
// and the pids of the runs made in it: the kernel audits every process on
// the host, and only the records of our own runs count.
type shadowRoot struct {
	root string
	ours map[int]bool
	t    *testing.T
}

// newShadowRoot skips (fails in CI) when a tool is missing, and writes a
// minimal passwd, shadow, group and gshadow.
func newShadowRoot(t *testing.T, tools ...string) *shadowRoot {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
				t.Fatalf("%s not found (Debian package passwd)", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	sh := &shadowRoot{root: t.TempDir(), ours: map[int]bool{}, t: t}
	if err := os.MkdirAll(filepath.Join(sh.root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for rel, s := range map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"etc/shadow":  "root:*:19000:0:99999:7:::\n",
		"etc/group":   "root:x:0:\nsudo:x:27:\nusers:x:100:\n",
		"etc/gshadow": "root:*::\nsudo:*::\nusers:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(sh.root, rel), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return sh
}

// run runs a tool (args as given) and remembers its pid.
func (sh *shadowRoot) run(args ...string) {
	sh.t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	if out, err := cmd.CombinedOutput(); err != nil {
		sh.t.Fatalf("%q: %v\n%s", args, err, out)
	}
	sh.ours[cmd.Process.Pid] = true
}
