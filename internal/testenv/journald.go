package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Journald binaries of Debian's systemd package and util-linux's unshare.
const (
	JournaldBin   = "/lib/systemd/systemd-journald"
	JournalctlBin = "/usr/bin/journalctl"
	UnshareBin    = "/usr/bin/unshare"
)

// Journald is a real systemd-journald running as a journal namespace
// instance (systemd-journald NAMESPACE), so it leaves the host's own
// journal, /dev/log and kernel audit settings alone. Its sockets are in
// /run/systemd/journal.NAMESPACE and its files in
// /var/log/journal/MACHINE-ID.NAMESPACE; both are removed when the test
// ends. Read it with journalctl --namespace=NAMESPACE.
type Journald struct {
	Namespace string
	// DevLog is the namespace's syslog socket (its /dev/log).
	DevLog string

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
}

// StartJournald starts a journald namespace instance. It needs root, the
// systemd package and /etc/machine-id.
func StartJournald(t testing.TB) *Journald {
	t.Helper()
	need(t, JournaldBin, JournalctlBin, UnshareBin)
	if os.Geteuid() != 0 {
		skipOrFail(t, "journald needs root")
	}
	mid, err := os.ReadFile("/etc/machine-id")
	if err != nil || len(bytes.TrimSpace(mid)) == 0 {
		skipOrFail(t, "journald needs /etc/machine-id: %v", err)
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	ns := "provtrail-test-" + hex.EncodeToString(rnd[:])
	runDir := "/run/systemd/journal." + ns
	j := &Journald{Namespace: ns, DevLog: filepath.Join(runDir, "dev-log"), t: t, done: make(chan struct{})}
	var out bytes.Buffer
	j.cmd = exec.Command(JournaldBin, ns)
	j.cmd.Stdout, j.cmd.Stderr = &out, &out
	if err := j.cmd.Start(); err != nil {
		t.Fatalf("start journald: %v", err)
	}
	go func() { j.cmd.Wait(); close(j.done) }()
	t.Cleanup(func() {
		j.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-j.done:
		case <-time.After(10 * time.Second):
			j.cmd.Process.Kill()
			<-j.done
		}
		id := strings.TrimSpace(string(mid))
		for _, d := range []string{runDir, "/var/log/journal/" + id + "." + ns, "/run/log/journal/" + id + "." + ns} {
			os.RemoveAll(d)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(j.DevLog); err == nil {
			return j
		}
		select {
		case <-j.done:
			t.Fatalf("journald exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("journald did not create %s: %s", j.DevLog, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RunChrooted runs a tool that chroots into root (shadow-utils' --root)
// so that its syslog(3) messages reach this journal: in a private mount
// namespace, root/dev/log is bind-mounted onto the namespace's socket.
// Nothing is mounted on the host.
func (j *Journald) RunChrooted(root string, args ...string) (string, error) {
	j.t.Helper()
	devLog := filepath.Join(root, "dev", "log")
	if err := os.MkdirAll(filepath.Dir(devLog), 0o755); err != nil {
		return "", err
	}
	if f, err := os.OpenFile(devLog, os.O_CREATE|os.O_RDONLY, 0o644); err == nil {
		f.Close()
	}
	script := `mount --bind "$1" "$2" && shift 2 && exec "$@"`
	cmd := exec.Command(UnshareBin, append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh", j.DevLog, devLog}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
