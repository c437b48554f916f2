package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Auditd binaries of Debian's auditd package.
const (
	AuditdBin   = "/usr/sbin/auditd"
	AuditctlBin = "/usr/sbin/auditctl"
)

// Auditd is a running auditd writing its own log in a test directory.
// The kernel has one audit daemon at a time: StartAuditd serialises tests
// of all packages on a lock file, refuses to run beside a system auditd,
// and restores the kernel's audit "enabled" flag when the test ends.
type Auditd struct {
	Dir string
	// Log is the audit.log auditd writes (log_format ENRICHED).
	Log string

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
}

var auditPid = regexp.MustCompile(`(?m)^pid (\d+)$`)
var auditEnabled = regexp.MustCompile(`(?m)^enabled (\d+)$`)

func auditStatus(t testing.TB) (enabled string, pid int) {
	t.Helper()
	out, err := exec.Command(AuditctlBin, "-s").CombinedOutput()
	if err != nil {
		t.Fatalf("auditctl -s: %v\n%s", err, out)
	}
	if m := auditEnabled.FindSubmatch(out); m != nil {
		enabled = string(m[1])
	}
	if m := auditPid.FindSubmatch(out); m != nil {
		pid, _ = strconv.Atoi(string(m[1]))
	}
	return enabled, pid
}

// StartAuditd starts auditd -n with a configuration in t.TempDir() and
// stops it when the test ends. It needs root and the auditd package.
func StartAuditd(t testing.TB) *Auditd {
	t.Helper()
	need(t, AuditdBin, AuditctlBin)
	if os.Geteuid() != 0 {
		skipOrFail(t, "auditd needs root")
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "provtrail-testenv-auditd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() }) // releases the lock, after auditd stopped (cleanups run LIFO)

	enabled, pid := auditStatus(t)
	if pid != 0 {
		skipOrFail(t, "an audit daemon (pid %d) already runs on this host", pid)
	}
	dir := t.TempDir()
	a := &Auditd{Dir: dir, Log: filepath.Join(dir, "log", "audit.log"), t: t, done: make(chan struct{})}
	for _, d := range []string{"log", "plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`local_events = yes
write_logs = yes
log_file = %s
log_group = root
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
freq = 1
max_log_file = 64
num_logs = 2
max_log_file_action = IGNORE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
priority_boost = 0
name_format = NONE
plugin_dir = %s
q_depth = 2000
overflow_action = IGNORE
end_of_event_timeout = 2
`, a.Log, filepath.Join(dir, "plugins"))
	if err := os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	a.cmd = exec.Command(AuditdBin, "-n", "-c", dir)
	a.cmd.Stdout, a.cmd.Stderr = &stderr, &stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start auditd: %v", err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-a.done
		}
		if enabled != "" {
			exec.Command(AuditctlBin, "-e", enabled).Run()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, pid := auditStatus(t); pid == a.cmd.Process.Pid {
			break
		}
		select {
		case <-a.done:
			t.Fatalf("auditd exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("auditd did not register with the kernel: %s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return a
}

// WaitFor waits until the log holds substr.
func (a *Auditd) WaitFor(substr string) string {
	a.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(a.Log)
		if strings.Contains(string(b), substr) {
			return string(b)
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("audit log never held %q; it has:\n%s", substr, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Mark writes a USER record with text (auditctl -m), to find a step in
// the log.
func (a *Auditd) Mark(text string) {
	a.t.Helper()
	if out, err := exec.Command(AuditctlBin, "-m", text).CombinedOutput(); err != nil {
		a.t.Fatalf("auditctl -m: %v\n%s", err, out)
	}
	a.WaitFor(text)
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
		t.Fatalf(format+" (PROVTRAIL_TESTENV_REQUIRED=1)", args...)
	}
	t.Skipf(format, args...)
}
