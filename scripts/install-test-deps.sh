#!/bin/sh
# Installs the Debian packages the test suite needs (real slapd, shadow-utils,
# sudo) when they are missing. Runs as root on CI; elsewhere it uses sudo.
set -eu
missing=""
for pkg in "$@"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ -n "$missing" ]; then
	echo "installing test dependencies:$missing"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# slapd's postinst would configure a default directory; tests run their own.
	echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
	# Tests start their own slapd and auditd; keep the packages' services from
	# starting system-wide instances that would clash with them.
	added_policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
		$SUDO chmod 755 /usr/sbin/policy-rc.d
		added_policy=1
	fi
	$SUDO apt-get install -y -qq --no-install-recommends $missing
	[ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi
# journald test instances need a machine id; a fresh container may have none.
if [ ! -s /etc/machine-id ] && command -v systemd-machine-id-setup >/dev/null; then
	$SUDO systemd-machine-id-setup >/dev/null
fi
