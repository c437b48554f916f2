#!/bin/bash
# Runs the packaged daemons under a real systemd (make systemd-test, optional):
# boots systemd in a systemd-nspawn container whose root is an overlay of this
# machine's root (so nothing here changes), installs the .debs there, and
# checks what a unit file alone cannot show: Type=notify start-up (READY and
# the STATUS line), the full sandbox with a running agent (journald through
# group adm) delivering to central, reload via ExecReload (good and broken
# config), the file-permission refusal, the watchdog killing and restarting a
# hung agent, and a clean stop. Needs root and systemd-container (installed
# when missing); takes about a minute.
# No grep -q after a pipe: with pipefail, the writer's SIGPIPE would fail it.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "systemd-test: FAIL: $*" >&2; exit 1; }
ok() { echo "  ok  $*"; }

if [ "$(id -u)" -ne 0 ]; then
	[ "${CI:-}" = true ] && fail "must run as root"
	echo "systemd-test: skipped: needs root"
	exit 0
fi
command -v systemd-nspawn >/dev/null || ./scripts/install-test-deps.sh systemd-container
command -v systemd-nspawn >/dev/null || fail "systemd-nspawn not found (Debian package systemd-container)"

tmp=$(mktemp -d /tmp/provtrail-systemd-test.XXXXXX)
R=$tmp/root
nspawn_pid=
cleanup() {
	status=$?
	set +e
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid"
		for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$nspawn_pid" 2>/dev/null
	fi
	mountpoint -q "$R" && umount "$R"
	mountpoint -q "$tmp/t" && umount "$tmp/t"
	rm -rf "$tmp"
	[ $status -eq 0 ] && echo "systemd-test: PASS" || echo "systemd-test: FAILED" >&2
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building the .deb packages"
DIST="$tmp/debs" PROVTRAIL_VERSION=0.0.0~systemdtest FORMATS=deb ./packaging/build.sh >"$tmp/build.log" 2>&1 ||
	{ cat "$tmp/build.log" >&2; fail "build"; }

echo "== container root: an overlay of / (changes stay in a tmpfs)"
mkdir -p "$tmp/t" "$R"
mount -t tmpfs -o size=1g tmpfs "$tmp/t"
mkdir -p "$tmp/t/up" "$tmp/t/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/t/up,workdir=$tmp/t/work" "$R"
# Start nothing of this machine's own services in the container.
rm -f "$R"/etc/systemd/system/multi-user.target.wants/*
dpkg --root="$R" -i "$tmp"/debs/*.deb >"$tmp/dpkg.log" 2>&1 || { cat "$tmp/dpkg.log" >&2; fail "dpkg --root -i"; }
ok "installed into the container root"

E=$R/etc/provtrail
umask 077
head -c 24 /dev/urandom | base64 >"$E/agent.pass"
head -c 24 /dev/urandom | base64 >"$E/log.pass"
chroot "$R" provtrail keygen --out /etc/provtrail --name agent --passphrase-file /etc/provtrail/agent.pass >/dev/null
chroot "$R" provtrail keygen --out /etc/provtrail --name log --passphrase-file /etc/provtrail/log.pass >/dev/null
install -m 0644 "$E/agent.pub" "$E/keys/web-01.pub"
cat >"$E/central.hcl" <<'EOF'
central {
  listen   = "127.0.0.1:7080"
  data_dir = "/var/lib/provtrail-central"
  dev      = true
}
log_signer {
  key_file        = "/etc/provtrail/log.key"
  passphrase_file = "/etc/provtrail/log.pass"
  origin          = "systemd-test/provtrail"
}
agent "web-01" {
  public_key_file = "keys/web-01.pub"
}
EOF
cat >"$E/agent.hcl" <<'EOF'
agent {
  id                 = "web-01"
  heartbeat_interval = "5s"
}
signer {
  key_file        = "/etc/provtrail/agent.key"
  passphrase_file = "/etc/provtrail/agent.pass"
}
forward {
  url = "http://127.0.0.1:7080"
}
metrics {
  listen = "127.0.0.1:9464"
}
collector "journald" "system" {}
EOF
chroot "$R" chown provtrail:provtrail /etc/provtrail/agent.key /etc/provtrail/agent.pass /etc/provtrail/agent.pub \
	/etc/provtrail/log.key /etc/provtrail/log.pass /etc/provtrail/log.pub /etc/provtrail/central.hcl /etc/provtrail/agent.hcl
# Test-rig drop-ins. systemd-nspawn shows the container a boot_id of its own,
# which a sandbox with a fresh /proc (ProtectProc=, ProtectKernelTunables=,
# ProtectControlGroups=) does not see, so journalctl --follow would filter
# on the host's boot and see nothing; on a real host there is one boot_id.
# A short watchdog keeps the hang test quick.
mkdir -p "$R/etc/systemd/system/provtrail-agent.service.d"
cat >"$R/etc/systemd/system/provtrail-agent.service.d/systemd-test.conf" <<'EOF'
[Service]
ProtectProc=default
ProtectKernelTunables=no
ProtectControlGroups=no
WatchdogSec=6s
EOF
umask 022

echo "== booting systemd in the container"
setsid systemd-nspawn -D "$R" --boot --register=no --keep-unit --private-network --console=passive \
	-M provtrail-systemd-test >"$tmp/console.log" 2>&1 &
nspawn_pid=$!
init=
for _ in $(seq 1 60); do
	init=$(pgrep -P "$nspawn_pid" -x systemd || true)
	[ -n "$init" ] && break
	sleep 0.5
done
[ -n "$init" ] || { cat "$tmp/console.log" >&2; fail "systemd did not start in the container"; }
inside() { nsenter -t "$init" -a "$@"; }
for _ in $(seq 1 60); do
	state=$(inside systemctl is-system-running 2>/dev/null || true)
	case "$state" in running | degraded) break ;; esac
	sleep 0.5
done
case "$state" in running | degraded) ok "systemd is $state" ;; *) fail "container systemd is '$state'" ;; esac

prop() { inside systemctl show -p "$2" --value "$1"; }
echo "== Type=notify start-up"
inside systemctl start provtrail-central || { inside journalctl -u provtrail-central --no-pager | tail -20 >&2; fail "start central"; }
[ "$(prop provtrail-central StatusText)" = "serving on 127.0.0.1:7080" ] || fail "central status: $(prop provtrail-central StatusText)"
ok "provtrail-central active, status '$(prop provtrail-central StatusText)'"
inside systemctl start provtrail-agent || { inside journalctl -u provtrail-agent --no-pager | tail -20 >&2; fail "start agent"; }
[ "$(prop provtrail-agent StatusText)" = "running 1 collectors" ] || fail "agent status: $(prop provtrail-agent StatusText)"
ok "provtrail-agent active, status '$(prop provtrail-agent StatusText)'"

echo "== a change on the host reaches central through the sandboxed agent"
# The collector starts at the journal's end: wait until it follows it.
for _ in $(seq 1 40); do
	inside curl -fsS 127.0.0.1:9464/metrics 2>/dev/null | grep '^provtrail_agent_collector_up{collector="journald/system"} 1' >/dev/null && break
	sleep 0.5
done
sleep 2
inside useradd provtrail-systemd-test-user
got=
for _ in $(seq 1 60); do
	got=$(inside runuser -u provtrail -- provtrail query --config /etc/provtrail/central.hcl --user provtrail-systemd-test-user --format ndjson 2>/dev/null | head -1)
	[ -n "$got" ] && break
	sleep 0.5
done
[ -n "$got" ] || { inside journalctl -u provtrail-agent --no-pager | tail -20 >&2; fail "useradd never reached central"; }
ok "central stored: $(echo "$got" | cut -c1-120)..."

echo "== reload"
pid=$(prop provtrail-agent MainPID)
inside systemctl reload provtrail-agent || fail "reload"
[ "$(prop provtrail-agent MainPID)" = "$pid" ] || fail "reload restarted the agent"
ok "systemctl reload: SIGHUP, same process"
cp -p "$E/agent.hcl" "$tmp/agent.hcl"
echo 'bogus {' >>"$E/agent.hcl"
if inside systemctl reload provtrail-agent 2>/dev/null; then fail "reload with a broken config succeeded"; fi
[ "$(prop provtrail-agent ActiveState)" = active ] && [ "$(prop provtrail-agent MainPID)" = "$pid" ] ||
	fail "a broken reload disturbed the running agent"
cp -p "$tmp/agent.hcl" "$E/agent.hcl"
ok "broken config: reload refused, agent keeps running"

echo "== permissions"
chmod 0644 "$E/agent.key"
if inside systemctl restart provtrail-agent 2>/dev/null; then fail "agent started with a world-readable key"; fi
inside journalctl -u provtrail-agent --no-pager | grep "fix with: chmod 600 /etc/provtrail/agent.key" >/dev/null ||
	fail "the refusal does not say how to fix it"
chmod 0600 "$E/agent.key"
inside systemctl stop provtrail-agent # cancels the pending Restart=on-failure
inside systemctl reset-failed provtrail-agent 2>/dev/null || true
inside systemctl start provtrail-agent || fail "start after chmod 600"
ok "world-readable key refused with 'chmod 600', starts once fixed"

echo "== watchdog"
pid=$(prop provtrail-agent MainPID)
restarts=$(prop provtrail-agent NRestarts)
inside kill -STOP "$pid"
# WatchdogSec=6s, then SIGABRT (up to TimeoutAbortSec if it does not die), then RestartSec=5s.
for _ in $(seq 1 120); do
	inside journalctl -u provtrail-agent --no-pager | grep "Failed with result 'watchdog'" >/dev/null &&
		[ "$(prop provtrail-agent NRestarts)" -gt "$restarts" ] && [ "$(prop provtrail-agent ActiveState)" = active ] && break
	sleep 0.5
done
inside journalctl -u provtrail-agent --no-pager | grep "Failed with result 'watchdog'" >/dev/null ||
	{ inside journalctl -u provtrail-agent --no-pager | grep -v 'provtrail\[' | tail -15 >&2; fail "a hung agent was not killed by the watchdog"; }
[ "$(prop provtrail-agent NRestarts)" -gt "$restarts" ] && [ "$(prop provtrail-agent ActiveState)" = active ] ||
	fail "the agent was not restarted after the watchdog killed it"
[ "$(prop provtrail-agent MainPID)" != "$pid" ] || fail "same process after the watchdog"
ok "hung agent killed by the watchdog and restarted"

echo "== stop"
for u in provtrail-agent provtrail-central; do
	inside systemctl stop $u
	[ "$(prop $u Result)" = success ] || fail "$u stopped with result $(prop $u Result)"
done
ok "both stopped cleanly"
