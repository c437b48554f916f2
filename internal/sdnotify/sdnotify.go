// Package sdnotify tells systemd what a Type=notify service is doing, as
// sd_notify(3) does, in pure Go: READY=1 after start, RELOADING=1 around a
// configuration reload, STOPPING=1 on the way out, STATUS= lines for
// `systemctl status`, and WATCHDOG=1 keep-alives when the unit sets
// WatchdogSec=.
//
// The protocol is one unix datagram per message to the socket named by
// $NOTIFY_SOCKET (a path, or an abstract socket when it starts with '@').
// When NOTIFY_SOCKET is unset, as when the daemon runs outside systemd,
// every method is a no-op that returns nil, so callers need no special case.
//
// A Notifier holds only what it read from the environment at New; it keeps
// no connection open and is safe for concurrent use.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables systemd sets for a service (systemd.exec(5)).
const (
	EnvSocket      = "NOTIFY_SOCKET"
	EnvWatchdogUS  = "WATCHDOG_USEC"
	EnvWatchdogPID = "WATCHDOG_PID"
)

// maxStatus bounds a STATUS= line; systemd truncates long ones anyway.
const maxStatus = 1024

// ErrUnsupportedSocket is returned by New for a NOTIFY_SOCKET this package
// cannot use (systemd also allows vsock: addresses, for VMs).
var ErrUnsupportedSocket = errors.New("sdnotify: unsupported NOTIFY_SOCKET")

// Notifier sends state changes to systemd. The zero value and a nil
// *Notifier are disabled: every method returns nil and sends nothing.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration
	log      *slog.Logger
}

// New reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the process
// environment. log receives watchdog problems; nil discards them.
func New(log *slog.Logger) (*Notifier, error) {
	return FromEnv(os.LookupEnv, os.Getpid(), log)
}

// FromEnv is New with the environment and process id given, for tests and
// for callers that keep their own environment.
func FromEnv(lookup func(string) (string, bool), pid int, log *slog.Logger) (*Notifier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{log: log}
	sock, ok := lookup(EnvSocket)
	if !ok || sock == "" {
		return n, nil
	}
	if sock[0] != '/' && sock[0] != '@' {
		return n, fmt.Errorf("%w %q: want an absolute path or @abstract name", ErrUnsupportedSocket, sock)
	}
	// Go's net package maps a leading '@' to the Linux abstract namespace.
	n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"}
	d, err := watchdogInterval(lookup, pid)
	if err != nil {
		return n, err
	}
	n.watchdog = d
	return n, nil
}

// watchdogInterval is sd_watchdog_enabled(3): WATCHDOG_USEC, honoured only
// when WATCHDOG_PID is unset or names this process.
func watchdogInterval(lookup func(string) (string, bool), pid int) (time.Duration, error) {
	us, ok := lookup(EnvWatchdogUS)
	if !ok || us == "" {
		return 0, nil
	}
	if p, ok := lookup(EnvWatchdogPID); ok && p != "" {
		wpid, err := strconv.Atoi(p)
		if err != nil {
			return 0, fmt.Errorf("sdnotify: %s=%q is not a process id", EnvWatchdogPID, p)
		}
		if wpid != pid {
			return 0, nil // meant for another process (our parent or child)
		}
	}
	v, err := strconv.ParseUint(us, 10, 63)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("sdnotify: %s=%q is not a positive number of microseconds", EnvWatchdogUS, us)
	}
	return time.Duration(v) * time.Microsecond, nil
}

// Enabled reports whether the notifier talks to systemd.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// WatchdogInterval is the WatchdogSec= of the unit, or 0 when the watchdog
// is off for this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.watchdog
}

// Ready tells systemd that start-up is complete (READY=1): call it once the
// daemon serves, not before.
func (n *Notifier) Ready() error { return n.Send("READY=1") }

// Reloading tells systemd a reload has begun. Call Ready when it is done,
// whether it succeeded or not. MONOTONIC_USEC lets Type=notify-reload units
// match the message to their reload request.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sdnotify: read CLOCK_MONOTONIC: %w", err)
	}
	usec := ts.Sec*1_000_000 + ts.Nsec/1_000
	return n.Send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// Stopping tells systemd the daemon is shutting down (STOPPING=1).
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// Status sets the one-line status `systemctl status` shows. Newlines are
// replaced and long text is cut, since each line of a message is a field.
func (n *Notifier) Status(s string) error {
	s = strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
	if len(s) > maxStatus {
		s = s[:maxStatus]
	}
	return n.Send("STATUS=" + s)
}

// ExtendTimeout asks systemd for d more time to start, reload or stop
// (EXTEND_TIMEOUT_USEC) when a step is known to be slow.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	return n.Send("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

// Send writes one raw notification message, newline-separated KEY=VALUE
// assignments (sd_notify(3)). It is a no-op when the notifier is disabled.
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: connect %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send to %s: %w", n.addr.Name, err)
	}
	return nil
}

// Watchdog sends WATCHDOG=1 at half the watchdog interval until ctx ends.
// When healthy is not nil it is asked first on every tick; while it returns
// an error no keep-alive is sent (the error becomes the STATUS line), so a
// wedged daemon is restarted by systemd instead of being kept alive by a
// timer that still runs. Watchdog returns nil at once when the watchdog is
// off, and ctx's error when ctx ends.
func (n *Notifier) Watchdog(ctx context.Context, healthy func(context.Context) error) error {
	interval := n.WatchdogInterval()
	if interval <= 0 {
		return nil
	}
	tick := time.NewTicker(interval / 2)
	defer tick.Stop()
	failing := false
	for {
		if err := n.watchdogTick(ctx, healthy, &failing); err != nil {
			n.log.Warn("systemd watchdog notification failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (n *Notifier) watchdogTick(ctx context.Context, healthy func(context.Context) error, failing *bool) error {
	if healthy != nil {
		if err := healthy(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !*failing {
				n.log.Error("health check failed; withholding systemd watchdog keep-alive", "err", err)
			}
			*failing = true
			return n.Status("unhealthy: " + err.Error())
		}
		if *failing {
			n.log.Info("health check passes again; resuming systemd watchdog keep-alive")
			*failing = false
			if err := n.Status("running"); err != nil {
				return err
			}
		}
	}
	return n.Send("WATCHDOG=1")
}
