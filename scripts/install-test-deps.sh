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
$SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# journald test instances need a machine id; a fresh container may have none.
if [ ! -s /etc/machine-id ] && command -v systemd-machine-id-setup >/dev/null; then
	$SUDO systemd-machine-id-setup >/dev/null
fi
