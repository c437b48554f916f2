#!/bin/sh
# Every provtrail package runs this before it unpacks, so that its files can
# be owned by the provtrail account (dpkg and rpm resolve owner names at
# unpack time). Idempotent; leaves an existing account alone.
set -e
if getent passwd provtrail >/dev/null 2>&1; then
	exit 0
fi
if command -v systemd-sysusers >/dev/null 2>&1; then
	# The same line as /usr/lib/sysusers.d/provtrail.conf, which is not
	# on disk yet; --replace lets that file take over later.
	echo 'u provtrail - "provtrail daemon" /var/lib/provtrail' |
		systemd-sysusers --replace=/usr/lib/sysusers.d/provtrail.conf -
	getent passwd provtrail >/dev/null 2>&1 && exit 0
fi
nologin=/usr/sbin/nologin
[ -x "$nologin" ] || nologin=/sbin/nologin
if command -v useradd >/dev/null 2>&1; then
	getent group provtrail >/dev/null 2>&1 || groupadd --system provtrail
	useradd --system --gid provtrail --home-dir /var/lib/provtrail --no-create-home \
		--shell "$nologin" --comment "provtrail daemon" provtrail
elif command -v adduser >/dev/null 2>&1; then
	adduser --system --group --home /var/lib/provtrail --no-create-home \
		--shell "$nologin" --gecos "provtrail daemon" provtrail
else
	echo "provtrail: cannot create the provtrail system user (no systemd-sysusers, useradd or adduser)" >&2
	exit 1
fi
