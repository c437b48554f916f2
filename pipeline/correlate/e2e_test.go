package correlate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/accounts"
	"github.com/provtrail/provtrail/collectors/auditd"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/testenv"
	"github.com/provtrail/provtrail/pipeline/correlate"
)

// TestRealToolsOneEventPerChange runs real shadow-utils tools against a
// scratch root while a real auditd and the real accounts collector watch,
// feeds both collectors' records to the correlator, and checks that each
// change comes out once, with the evidence of both.
func TestRealToolsOneEventPerChange(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root (shadow-utils --root, auditd)")
	}
	a := testenv.StartAuditd(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	for rel, s := range map[string]string{
		"etc/passwd":  "root:x:0:0:root:/root:/bin/bash\n",
		"etc/shadow":  "root:*:19000:0:99999:7:::\n",
		"etc/group":   "root:x:0:\nsudo:x:27:\n",
		"etc/gshadow": "root:*::\nsudo:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The accounts collector, running.
	var mu sync.Mutex
	var accRecs []collectors.Record
	cfg := accounts.DefaultConfig()
	cfg.Root, cfg.PollInterval, cfg.Debounce = root, time.Second, 50*time.Millisecond
	col := accounts.New(collectors.Settings{Type: "accounts", Name: "local", Hostname: "vm", StateDir: t.TempDir()}, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- col.Run(ctx, nil, collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
			mu.Lock()
			accRecs = append(accRecs, recs...)
			mu.Unlock()
			return nil
		}))
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("accounts Run: %v", err)
		}
	}()
	time.Sleep(300 * time.Millisecond)

	ours := map[int]bool{}
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		ours[cmd.Process.Pid] = true
		time.Sleep(200 * time.Millisecond) // one diff per tool
	}
	run("useradd", "--root", root, "-u", "1600", "pt_e2e")
	run("usermod", "--root", root, "-s", "/bin/sh", "pt_e2e")
	run("gpasswd", "--root", root, "-a", "pt_e2e", "sudo")
	run("usermod", "--root", root, "-p", "$6$c2FsdA$notarealhashbutshapedlikeone0123456789abcdefghijklmnopqrstuvwxyzABCDEF", "pt_e2e")
	run("usermod", "--root", root, "-L", "pt_e2e")
	run("userdel", "--root", root, "pt_e2e")
	a.Mark("provtrail e2e done")
	time.Sleep(500 * time.Millisecond)

	// audit.log through the auditd parser: only our tools' records.
	var audRecs []collectors.Record
	f, err := os.Open(a.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := auditd.NewParser(collectors.Settings{Name: "local", Hostname: "vm"}, nil)
	err = p.Parse(context.Background(), f, a.Log, collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
		for _, r := range recs {
			if ours[r.Event.Origin.PID] {
				audRecs = append(audRecs, r)
			}
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}

	c := correlate.New(correlate.Config{})
	now := time.Now()
	var outs []correlate.Output
	outs = append(outs, c.Add(now, "auditd/local", audRecs)...)
	mu.Lock()
	outs = append(outs, c.Add(now, "accounts/local", accRecs)...)
	mu.Unlock()
	outs = append(outs, c.Flush(now)...)

	var got []string
	for _, o := range outs {
		if o.Event == nil {
			continue
		}
		e := o.Event
		if err := event.Validate(e); err != nil {
			t.Errorf("%s: %v", e.Action, err)
		}
		var sources []string
		for _, l := range strings.Split(e.Raw, "\n") {
			switch {
			case strings.HasPrefix(l, "type="):
				sources = append(sources, "audit")
			case strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-"):
				if !slices.Contains(sources, "diff") {
					sources = append(sources, "diff")
				}
			}
		}
		got = append(got, fmt.Sprintf("%s %s", e.Action, strings.Join(sources, "+")))
		if strings.Contains(e.Raw, "$6$") {
			t.Errorf("%s: hash in raw", e.Action)
		}
	}
	want := []string{
		"user.create audit+diff",
		"user.modify audit+diff",     // usermod -s
		"privilege.grant audit+diff", // gpasswd -a sudo
		"password.change audit+diff", // usermod -p
		"user.lock audit+diff",       // usermod -L: audit only says "updating passwd"
		"privilege.revoke diff",      // userdel's group cleanup: 4.13's audit names no group
		"user.delete audit+diff",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
