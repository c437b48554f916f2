// Package journald is the collector for the systemd journal on hosts
// without an auth file: it runs `journalctl --output=json --all --follow
// --no-pager --lines=all --after-cursor C` (no cgo, no libsystemd in this
// process) and stores the entry's __CURSOR as its Position.
//
// Syslog messages of the shadow-utils tools, sudo and su are rendered as
// syslog lines and read by the authlog collector's parser; audit records
// that journald received on its audit socket (_TRANSPORT=audit) are read
// by the auditd collector's parser. journald's trusted fields give the
// actor the text log lacks: _AUDIT_LOGINUID (the login user, kept across
// sudo) and _AUDIT_SESSION, with _PID and _COMM for the origin.
//
// journalctl is restarted with backoff when it exits. --lines=all is
// always passed with --after-cursor: journalctl -f applies an implicit
// -n 10 otherwise and skips the backlog (systemd 252, verified). A cursor
// journalctl refuses (vacuumed journal, other machine) is reported and
// reading restarts from the cursor's own timestamp (--since).
package journald
