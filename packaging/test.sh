#!/bin/sh
# Package test (make package-test): builds the .deb and .rpm packages, installs
# the .debs on this machine with dpkg, checks users, file owners and modes,
# runs systemd-analyze verify and security on the installed units, runs the
# installed binary's validate on the shipped configs as the service account,
# upgrades with a locally edited config (which must survive), then removes
# and purges everything again. Exits non-zero on the first failure.
#
# Needs root (CI runs as root) and dpkg; systemd-analyze comes from Debian's
# systemd package (installed when missing). It refuses to touch provtrail
# packages that it did not install itself, and cleans up after a run that
# died half-way, so it can run again and again.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
ok() { echo "  ok  $*"; }

if [ "$(id -u)" -ne 0 ]; then
	[ "${CI:-}" = true ] && fail "must run as root on CI (dpkg -i installs into /)"
	echo "package-test: skipped: needs root to install packages with dpkg"
	exit 0
fi
command -v dpkg >/dev/null || fail "dpkg not found: this test installs .deb packages"
command -v systemd-analyze >/dev/null || ./scripts/install-test-deps.sh systemd
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (Debian package systemd)"

pkgs="provtrail-agent provtrail-central provtrail"
marker=/var/lib/provtrail-package-test.installed
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "installed"; }
for p in $pkgs; do
	if installed "$p" && [ ! -f "$marker" ]; then
		fail "package $p is installed and not by this test; remove it first (dpkg --purge $pkgs)"
	fi
done

tmp=$(mktemp -d /tmp/provtrail-package-test.XXXXXX)
had_user=no
getent passwd provtrail >/dev/null && had_user=yes
[ -f "$marker" ] && had_user=$(cat "$marker")
cleanup() {
	status=$?
	set +e
	if [ -f "$marker" ]; then
		dpkg --purge $pkgs >"$tmp/purge.log" 2>&1 || cat "$tmp/purge.log" >&2
		rm -rf /var/lib/provtrail /var/lib/provtrail-central /etc/provtrail
		if [ "$(cat "$marker")" = no ] && getent passwd provtrail >/dev/null; then
			userdel provtrail 2>/dev/null
			getent group provtrail >/dev/null && groupdel provtrail 2>/dev/null
		fi
		rm -f "$marker"
	fi
	rm -rf "$tmp"
	[ $status -eq 0 ] && echo "package-test: PASS" || echo "package-test: FAILED" >&2
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A run that died half-way left its packages: clear them first.
if [ -f "$marker" ]; then
	echo "== clearing a previous run's installation"
	dpkg --purge $pkgs >/dev/null 2>&1 || true
	rm -rf /var/lib/provtrail /var/lib/provtrail-central /etc/provtrail
fi

v1=0.0.0~pkgtest1
v2=0.0.0~pkgtest2
echo "== building packages $v1 (deb, rpm) and $v2 (deb)"
DIST="$tmp/v1" PROVTRAIL_VERSION=$v1 FORMATS="deb rpm" ./packaging/build.sh >"$tmp/build1.log" 2>&1 ||
	{ cat "$tmp/build1.log" >&2; fail "build of $v1"; }
DIST="$tmp/v2" PROVTRAIL_VERSION=$v2 FORMATS="deb" ./packaging/build.sh >"$tmp/build2.log" 2>&1 ||
	{ cat "$tmp/build2.log" >&2; fail "build of $v2"; }
for p in provtrail provtrail-agent provtrail-central; do
	[ -f "$tmp/v1/${p}_${v1}-1_$(dpkg --print-architecture).deb" ] || fail "no .deb for $p"
	ls "$tmp/v1/$p-$v1-1".*.rpm >/dev/null 2>&1 || fail "no .rpm for $p"
done
ok "built 3 .deb and 3 .rpm packages"

# expect PATH OWNER GROUP MODE
expect() {
	[ -e "$1" ] || fail "$1 is missing"
	got=$(stat -c '%U %G %a' "$1")
	[ "$got" = "$2 $3 $4" ] || fail "$1 is '$got', want '$2 $3 $4'"
	ok "$1 $2:$3 $4"
}

echo "== installing $v1 with dpkg -i"
echo "$had_user" >"$marker"
dpkg -i "$tmp"/v1/*.deb >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "dpkg -i"; }
for p in $pkgs; do
	[ "$(dpkg-query -W -f='${Version}' "$p")" = "$v1-1" ] || fail "$p is not at $v1-1"
done
ok "installed $pkgs"

echo "== account"
entry=$(getent passwd provtrail) || fail "no provtrail user after install"
uid=$(echo "$entry" | cut -d: -f3)
shell=$(echo "$entry" | cut -d: -f7)
sys_uid_max=$(awk '$1 == "SYS_UID_MAX" {print $2}' /etc/login.defs 2>/dev/null)
[ "$uid" -gt 0 ] && [ "$uid" -le "${sys_uid_max:-999}" ] || fail "provtrail uid $uid is not a system uid"
case "$shell" in */nologin | */false) ;; *) fail "provtrail has a login shell: $shell" ;; esac
id -nG provtrail | grep -qw adm && fail "provtrail is permanently in group adm (only the unit should add it)"
ok "provtrail is system user $uid with shell $shell, not in adm"

echo "== files, owners, modes"
expect /usr/bin/provtrail root root 755
expect /usr/lib/sysusers.d/provtrail.conf root root 644
expect /usr/share/doc/provtrail/operations.md root root 644
expect /etc/provtrail root root 755
expect /etc/provtrail/keys root root 755
expect /etc/provtrail/agent.hcl provtrail provtrail 600
expect /etc/provtrail/central.hcl provtrail provtrail 600
for u in provtrail-agent provtrail-central; do
	expect /usr/lib/systemd/system/$u.service root root 644
	expect /usr/lib/tmpfiles.d/$u.conf root root 644
done
expect /var/lib/provtrail provtrail provtrail 700
expect /var/lib/provtrail-central provtrail provtrail 700
for c in agent central; do
	dpkg-query -W -f='${Conffiles}\n' provtrail-$c | grep -q "^ /etc/provtrail/$c.hcl " ||
		fail "/etc/provtrail/$c.hcl is not a conffile of provtrail-$c"
done
ok "agent.hcl and central.hcl are conffiles"
# The same static binary runs on any glibc or musl host and in the distroless image.
if ldd /usr/bin/provtrail >/dev/null 2>&1; then fail "/usr/bin/provtrail is dynamically linked (want CGO_ENABLED=0)"; fi
ok "/usr/bin/provtrail is statically linked"
/usr/bin/provtrail version | grep -qF "$v1" || fail "installed binary does not report version $v1: $(/usr/bin/provtrail version)"
ok "provtrail version reports $v1"

echo "== systemd units"
units="/usr/lib/systemd/system/provtrail-agent.service /usr/lib/systemd/system/provtrail-central.service"
# verify prints problems and exits non-zero on them; warnings also fail here.
out=$(systemd-analyze verify $units 2>&1) || { echo "$out" >&2; fail "systemd-analyze verify"; }
[ -z "$out" ] || { echo "$out" >&2; fail "systemd-analyze verify printed warnings"; }
ok "systemd-analyze verify: clean"
for u in $units; do
	for want in Type=notify NotifyAccess=main WatchdogSec= StateDirectory= NoNewPrivileges=yes \
		ProtectSystem=strict ProtectHome=yes PrivateTmp=yes SystemCallFilter=@system-service \
		'CapabilityBoundingSet=$' User=provtrail; do
		grep -q "^$want" "$u" || fail "$u lacks $want"
	done
done
grep -q '^ExecReload=/bin/kill -HUP $MAINPID$' /usr/lib/systemd/system/provtrail-agent.service ||
	fail "agent unit cannot be reloaded with SIGHUP"
grep -q '^ExecReload=' /usr/lib/systemd/system/provtrail-central.service &&
	fail "central unit has ExecReload= but central does not handle SIGHUP (it would exit)"
grep -q '^SupplementaryGroups=adm$' /usr/lib/systemd/system/provtrail-agent.service ||
	fail "agent unit reads auth logs without SupplementaryGroups=adm"
grep -q '^[^#]*CAP_' $units && fail "a unit grants a capability outside a comment"
ok "hardening directives present, no capabilities granted"
# Exposure score (0 = locked down, 10 = unprotected); fail if it regresses.
threshold=${PROVTRAIL_UNIT_EXPOSURE_MAX:-2.0}
for u in $units; do
	if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
		score=$(systemd-analyze security --offline=yes "$u" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		[ -n "$score" ] || fail "no exposure score for $u"
		awk -v s="$score" -v t="$threshold" 'BEGIN { exit !(s <= t) }' ||
			fail "$(basename "$u") exposure $score > $threshold (systemd-analyze security --offline=yes $u)"
		ok "$(basename "$u") exposure $score (<= $threshold)"
	fi
done

echo "== installed binary validates the shipped configs, as the service account"
for c in agent central; do
	out=$(runuser -u provtrail -- /usr/bin/provtrail validate --kind $c --config /etc/provtrail/$c.hcl 2>&1) ||
		{ echo "$out" >&2; fail "provtrail validate /etc/provtrail/$c.hcl as provtrail"; }
	ok "$out"
done

echo "== upgrade $v1 -> $v2 keeps a locally edited config"
echo "# local edit by the package test" >>/etc/provtrail/agent.hcl
dpkg -i "$tmp"/v2/*.deb >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log" >&2; fail "upgrade with dpkg -i"; }
for p in $pkgs; do
	[ "$(dpkg-query -W -f='${Version}' "$p")" = "$v2-1" ] || fail "$p is not at $v2-1 after the upgrade"
done
tail -n 1 /etc/provtrail/agent.hcl | grep -q "local edit by the package test" || fail "upgrade overwrote the edited agent.hcl"
[ ! -e /etc/provtrail/agent.hcl.dpkg-dist ] || fail "upgrade left agent.hcl.dpkg-dist although the packaged file did not change"
expect /etc/provtrail/agent.hcl provtrail provtrail 600
/usr/bin/provtrail version | grep -qF "$v2" || fail "binary not upgraded to $v2"
ok "upgraded; local edit kept"

echo "== remove keeps configs and state, purge removes configs"
# What a running agent leaves: state that must outlive the package.
echo spooled >/var/lib/provtrail/test-spool && chown provtrail: /var/lib/provtrail/test-spool
dpkg -r provtrail-agent provtrail-central provtrail >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; fail "dpkg -r"; }
for f in /usr/bin/provtrail /usr/lib/systemd/system/provtrail-agent.service /usr/lib/systemd/system/provtrail-central.service; do
	[ ! -e "$f" ] || fail "$f left after dpkg -r"
done
[ -f /etc/provtrail/agent.hcl ] || fail "dpkg -r removed the agent.hcl conffile"
ok "dpkg -r removed the program, kept the configs"
dpkg --purge $pkgs >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; fail "dpkg --purge"; }
for p in $pkgs; do
	installed "$p" && fail "$p still installed after purge"
done
[ ! -e /etc/provtrail/agent.hcl ] && [ ! -e /etc/provtrail/central.hcl ] || fail "purge left configs in /etc/provtrail"
[ -f /var/lib/provtrail/test-spool ] || fail "purge deleted the agent state (it may hold undelivered evidence)"
grep -q "is kept" "$tmp/purge.log" || fail "purge did not tell where the kept state is"
ok "purged; configs gone, state kept and reported"

if command -v promtool >/dev/null 2>&1; then
	echo "== Prometheus alert rules"
	promtool check rules packaging/prometheus/provtrail-alerts.yml >"$tmp/promtool.log" 2>&1 ||
		{ cat "$tmp/promtool.log" >&2; fail "promtool check rules"; }
	ok "$(grep -o '[0-9]* rules found' "$tmp/promtool.log")"
else
	echo "  --  promtool not installed: alert rules not checked (Debian package prometheus)"
fi

if command -v rpm >/dev/null 2>&1; then
	echo "== rpm metadata"
	r=$(ls "$tmp"/v1/provtrail-agent-$v1-1.*.rpm)
	rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]' "$r" >"$tmp/rpm.txt" 2>/dev/null
	grep -q '^-rw------- provtrail provtrail cn /etc/provtrail/agent.hcl$' "$tmp/rpm.txt" ||
		{ cat "$tmp/rpm.txt" >&2; fail "agent.hcl is not %config(noreplace) provtrail 0600 in the rpm"; }
	rpm -qp --requires "$r" 2>/dev/null | grep -q "^provtrail = $v1-1" || fail "agent rpm does not require provtrail = $v1-1"
	rpm -qp --scripts "$r" 2>/dev/null | grep -q 'systemctl disable --now' || fail "agent rpm lacks its scriptlets"
	ok "rpm: config(noreplace), owners, requires, scriptlets"
else
	echo "  --  rpm not installed: rpm metadata not inspected (Debian package rpm)"
fi
