package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// listener is a real NOTIFY_SOCKET: a unix datagram socket like systemd's.
type listener struct {
	conn *net.UnixConn
	name string
}

func listen(t *testing.T, name string) *listener {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &listener{conn: conn, name: name}
}

func (l *listener) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := l.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, _, err := l.conn.ReadFromUnix(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

// none asserts nothing arrives within d.
func (l *listener) none(t *testing.T, d time.Duration) {
	t.Helper()
	buf := make([]byte, 4096)
	if err := l.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		t.Fatal(err)
	}
	if n, _, err := l.conn.ReadFromUnix(buf); err == nil {
		t.Fatalf("unexpected notification %q", buf[:n])
	}
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestMessages(t *testing.T) {
	for _, sockName := range []string{"path", "abstract"} {
		t.Run(sockName, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "notify.sock")
			if sockName == "abstract" {
				name = fmt.Sprintf("@provtrail-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
			}
			l := listen(t, name)
			n, err := FromEnv(env(map[string]string{EnvSocket: name}), 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !n.Enabled() {
				t.Fatal("notifier with NOTIFY_SOCKET set is disabled")
			}
			steps := []struct {
				send func() error
				want string
			}{
				{n.Ready, "READY=1"},
				{n.Stopping, "STOPPING=1"},
				{func() error { return n.Status("collecting 3 sources") }, "STATUS=collecting 3 sources"},
				{func() error { return n.Status("two\nlines") }, "STATUS=two lines"},
				{func() error { return n.ExtendTimeout(90 * time.Second) }, "EXTEND_TIMEOUT_USEC=90000000"},
			}
			for _, s := range steps {
				if err := s.send(); err != nil {
					t.Fatal(err)
				}
				if got := l.next(t); got != s.want {
					t.Errorf("got %q, want %q", got, s.want)
				}
			}
		})
	}
}

func TestReloadingCarriesMonotonicTime(t *testing.T) {
	name := filepath.Join(t.TempDir(), "n.sock")
	l := listen(t, name)
	n, err := FromEnv(env(map[string]string{EnvSocket: name}), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var first int64
	for i := range 2 {
		if err := n.Reloading(); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(l.next(t), "\n")
		if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
			t.Fatalf("reloading message = %q", lines)
		}
		usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
		if err != nil || usec <= 0 {
			t.Fatalf("MONOTONIC_USEC not a positive number: %q", lines[1])
		}
		if i == 0 {
			first = usec
			time.Sleep(2 * time.Millisecond)
		} else if usec <= first {
			t.Errorf("MONOTONIC_USEC did not advance: %d then %d", first, usec)
		}
	}
}

func TestDisabledWithoutSocket(t *testing.T) {
	n, err := FromEnv(env(map[string]string{EnvWatchdogUS: "1000000"}), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var nilN *Notifier
	for _, nn := range []*Notifier{n, nilN, {}} {
		if nn.Enabled() || nn.WatchdogInterval() != 0 {
			t.Fatal("notifier without NOTIFY_SOCKET is enabled")
		}
		for _, f := range []func() error{nn.Ready, nn.Reloading, nn.Stopping, func() error { return nn.Status("x") }} {
			if err := f(); err != nil {
				t.Errorf("disabled notifier returned %v", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := nn.Watchdog(ctx, nil); err != nil {
			t.Errorf("disabled watchdog returned %v, want nil at once", err)
		}
		if ctx.Err() != nil {
			t.Error("disabled watchdog blocked")
		}
		cancel()
	}
}

func TestNewReadsProcessEnvironment(t *testing.T) {
	name := filepath.Join(t.TempDir(), "n.sock")
	l := listen(t, name)
	t.Setenv(EnvSocket, name)
	t.Setenv(EnvWatchdogUS, "3000000")
	t.Setenv(EnvWatchdogPID, strconv.Itoa(os.Getpid()))
	n, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.WatchdogInterval(); got != 3*time.Second {
		t.Errorf("watchdog interval %v, want 3s", got)
	}
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := l.next(t); got != "READY=1" {
		t.Errorf("got %q", got)
	}
}

func TestWatchdogInterval(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "n.sock")
	tests := []struct {
		name    string
		env     map[string]string
		want    time.Duration
		wantErr bool
	}{
		{"no watchdog", map[string]string{EnvSocket: sock}, 0, false},
		{"for any pid", map[string]string{EnvSocket: sock, EnvWatchdogUS: "20000000"}, 20 * time.Second, false},
		{"for this pid", map[string]string{EnvSocket: sock, EnvWatchdogUS: "500000", EnvWatchdogPID: "42"}, 500 * time.Millisecond, false},
		{"for another pid", map[string]string{EnvSocket: sock, EnvWatchdogUS: "500000", EnvWatchdogPID: "7"}, 0, false},
		{"bad usec", map[string]string{EnvSocket: sock, EnvWatchdogUS: "soon"}, 0, true},
		{"zero usec", map[string]string{EnvSocket: sock, EnvWatchdogUS: "0"}, 0, true},
		{"bad pid", map[string]string{EnvSocket: sock, EnvWatchdogUS: "5", EnvWatchdogPID: "me"}, 0, true},
		{"no socket", map[string]string{EnvWatchdogUS: "500000"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := FromEnv(env(tt.env), 42, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got := n.WatchdogInterval(); got != tt.want {
				t.Errorf("interval = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUnsupportedSocket(t *testing.T) {
	_, err := FromEnv(env(map[string]string{EnvSocket: "vsock:2:1234"}), 1, nil)
	if !errors.Is(err, ErrUnsupportedSocket) {
		t.Fatalf("err = %v, want ErrUnsupportedSocket", err)
	}
}

func TestSendToMissingSocketFails(t *testing.T) {
	n, err := FromEnv(env(map[string]string{EnvSocket: filepath.Join(t.TempDir(), "gone.sock")}), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(); err == nil {
		t.Fatal("Ready to a socket nobody listens on returned nil")
	}
}

func TestWatchdogPingsAndStops(t *testing.T) {
	name := filepath.Join(t.TempDir(), "n.sock")
	l := listen(t, name)
	n, err := FromEnv(env(map[string]string{EnvSocket: name, EnvWatchdogUS: "40000"}), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- n.Watchdog(ctx, nil) }()
	for range 3 {
		if got := l.next(t); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	// First ping is immediate, then every 20ms: three take >= 40ms.
	if el := time.Since(start); el < 35*time.Millisecond {
		t.Errorf("three pings in %v: faster than half the interval", el)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watchdog returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watchdog did not stop when its context ended")
	}
}

func TestWatchdogWithholdsPingWhileUnhealthy(t *testing.T) {
	name := filepath.Join(t.TempDir(), "n.sock")
	l := listen(t, name)
	n, err := FromEnv(env(map[string]string{EnvSocket: name, EnvWatchdogUS: "20000"}), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sick atomic.Bool
	sick.Store(true)
	healthy := func(context.Context) error {
		if sick.Load() {
			return errors.New("spool not writable")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Watchdog(ctx, healthy)
	for range 3 {
		if got := l.next(t); got != "STATUS=unhealthy: spool not writable" {
			t.Fatalf("while unhealthy got %q", got)
		}
	}
	sick.Store(false)
	var got []string
	for len(got) < 2 {
		m := l.next(t)
		if strings.HasPrefix(m, "STATUS=unhealthy") {
			continue // a tick that raced with the switch
		}
		got = append(got, m)
	}
	if got[0] != "STATUS=running" || got[1] != "WATCHDOG=1" {
		t.Errorf("after recovery got %q, want STATUS=running then WATCHDOG=1", got)
	}
	cancel()
	time.Sleep(30 * time.Millisecond)
	// Drain what was in flight, then expect silence.
	for {
		buf := make([]byte, 128)
		l.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := l.conn.ReadFromUnix(buf); err != nil {
			break
		}
	}
	l.none(t, 100*time.Millisecond)
}

// BenchmarkSend: one notification (dial, write, close) to a real socket.
func BenchmarkSend(b *testing.B) {
	name := filepath.Join(b.TempDir(), "n.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := conn.ReadFromUnix(buf); err != nil {
				return
			}
		}
	}()
	n, err := FromEnv(env(map[string]string{EnvSocket: name}), 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := n.Send("WATCHDOG=1"); err != nil {
			b.Fatal(err)
		}
	}
}
