package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/internal/perms"
	"github.com/provtrail/provtrail/internal/sdnotify"
)

// daemonService tells systemd (sd_notify) what a daemon subcommand is
// doing: READY once it serves, RELOADING/READY around a SIGHUP reload,
// STOPPING on the way out, and watchdog keep-alives while it is healthy.
// Outside systemd every call is a no-op. Notification errors are logged,
// never fatal: systemd's own timeouts catch a daemon that cannot notify.
type daemonService struct {
	n   *sdnotify.Notifier
	log *slog.Logger
}

func newDaemonService(log *slog.Logger) *daemonService {
	n, err := sdnotify.New(log)
	if err != nil {
		log.Warn("systemd notification disabled", "err", err)
	}
	return &daemonService{n: n, log: log}
}

func (d *daemonService) warn(what string, err error) {
	if err != nil {
		d.log.Warn("systemd notification failed", "message", what, "err", err)
	}
}

// Ready reports start-up (or a reload) complete, with a status line.
func (d *daemonService) Ready(status string) {
	d.warn("STATUS", d.n.Status(status))
	d.warn("READY", d.n.Ready())
}

// Reloading reports that a reload has begun; call Ready when it is over.
func (d *daemonService) Reloading() { d.warn("RELOADING", d.n.Reloading()) }

// Supervise sends watchdog keep-alives while healthy (nil: always) passes,
// and STOPPING when ctx ends. It returns at once; the work runs until ctx
// ends.
func (d *daemonService) Supervise(ctx context.Context, healthy func(context.Context) error) {
	go func() {
		if err := d.n.Watchdog(ctx, healthy); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Warn("systemd watchdog stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		d.warn("STOPPING", d.n.Stopping())
	}()
}

// checkPrivateFiles refuses configuration, key and passphrase files that
// others can read or replace (internal/perms), reporting every bad file
// with the command that fixes it. Empty paths are skipped.
func checkPrivateFiles(paths ...string) error {
	var errs []error
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		if err := perms.CheckPrivate(p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("refusing to start with files others could read or change:\n%w", errors.Join(errs...))
	}
	return nil
}

// centralHealthy is the watchdog's check for central: the same as /readyz
// (the store answers, the log has a checkpoint), bounded in time so that a
// wedged store stops the keep-alives and systemd restarts central.
func centralHealthy(ctx context.Context, srv *central.Server) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := srv.Store().SchemaVersion(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, _, err := srv.Log().Checkpoint(ctx); err != nil {
		return fmt.Errorf("transparency log: %w", err)
	}
	return nil
}
