package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckPrivateFiles(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "agent.key", "k")
	loose := writeFile(t, dir, "agent.pass", "p")
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := writeFile(t, dir, "agent.hcl", "agent {}")
	if err := os.Chmod(conf, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := checkPrivateFiles(good, "", good); err != nil {
		t.Fatalf("private file refused: %v", err)
	}
	err := checkPrivateFiles(conf, good, loose, "")
	if err == nil {
		t.Fatal("group- and world-readable files accepted")
	}
	for _, want := range []string{"chmod 600 " + conf, "chmod 600 " + loose} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), good+":") {
		t.Errorf("error blames the private file:\n%v", err)
	}
}

// TestDaemonServiceNotifies drives the systemd notifications of a daemon
// subcommand against a real notify socket.
func TestDaemonServiceNotifies(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "60000000")
	t.Setenv("WATCHDOG_PID", "")
	next := func() string {
		t.Helper()
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	d := newDaemonService(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	d.Supervise(ctx, nil)
	if got := next(); got != "WATCHDOG=1" {
		t.Fatalf("first message %q, want the watchdog's first keep-alive", got)
	}
	d.Ready("collecting from 2 sources")
	if got := next(); got != "STATUS=collecting from 2 sources" {
		t.Errorf("got %q", got)
	}
	if got := next(); got != "READY=1" {
		t.Errorf("got %q", got)
	}
	d.Reloading()
	if got := next(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("got %q", got)
	}
	cancel()
	if got := next(); got != "STOPPING=1" {
		t.Errorf("got %q, want STOPPING=1 when the context ends", got)
	}
}

// TestDaemonsRefuseLooseFiles: the agent and central commands stop before
// doing anything when their config or keys are readable by others.
func TestDaemonsRefuseLooseFiles(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "agent.key", "not read: the check comes first")
	if err := os.Chmod(key, 0o640); err != nil {
		t.Fatal(err)
	}
	agentHCL := writeFile(t, dir, "agent.hcl", `agent {
  id        = "t"
  state_dir = "`+filepath.Join(dir, "state")+`"
}
signer { key_file = "agent.key" }
forward { url = "https://127.0.0.1:1" }
`)
	centralHCL := writeFile(t, dir, "central.hcl", `central {
  listen   = "127.0.0.1:0"
  data_dir = "`+filepath.Join(dir, "central")+`"
  dev      = true
}
log_signer { key_file = "log.key" }
`)
	logKey := writeFile(t, dir, "log.key", "x")
	if err := os.Chmod(centralHCL, 0o604); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(logKey, 0o660); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"agent", "--config", agentHCL}, []string{"chmod 600 " + key}},
		{[]string{"central", "--config", centralHCL}, []string{"chmod 600 " + centralHCL, "chmod 600 " + logKey}},
	} {
		code, _, stderr := runCmd(t, tt.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", tt.args, code, exitUsage, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tt.args, w, stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
			t.Errorf("%v: the agent created its state before refusing", tt.args)
		}
	}
}
