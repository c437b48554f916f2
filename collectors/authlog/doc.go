// Package authlog reads Linux auth files (/var/log/auth.log, /var/log/secure)
// and turns the shadow-utils, PAM, sudo and su lines in them into one
// provisioning event per real change.
//
// # Layouts
//
// Three syslog file layouts are read, detected per line:
//
//	traditional  Nov 25 17:37:08 host useradd[19571]: new user: ...          (Ubuntu, RHEL, Debian <= 11)
//	RFC 3339     2026-11-25T17:37:08.456929+00:00 host useradd[19571]: ...   (Debian 12's default)
//	RFC 5424     <86>1 2026-11-25T17:37:08.456929+00:00 host useradd 19571 - - new user: ...
//
// The traditional layout has no year and no zone: the zone is configured
// (timezone, default Local) and the year is fixed (year) or inferred as the
// latest year that does not put the line more than a day in the future.
//
// # Events
//
// useradd, usermod, userdel, groupadd, groupmod, groupdel, gpasswd, passwd,
// chpasswd, newusers (pam_unix chauthtok), chage, chfn and chsh lines become
// events. Twin lines one process writes for the same change (group and
// shadow group, /etc/group and /etc/gshadow, groupadd's three lines) are
// merged into one event whose Raw keeps every line. Membership of a
// privileged group (sudo, wheel, ...) is privilege.grant / privilege.revoke.
//
// The tools do not say who ran them, except gpasswd and passwd ("by root").
// When a sudo line on the same host ran the tool shortly before (within
// sudo_window), with the change's target among its arguments, the actor is
// the sudo user (auth "sudo", on behalf of sudo's run-as user); one sudo
// line names the actor of one process, except Debian's adduser/deluser
// wrappers, which run several. passwd's "changed by" line says the same for
// lock, unlock, delete and expire: the sudo command's option tells which.
// Inside the only open su session on the host (to root, or to the target
// for chsh/chfn/passwd), the actor is the user who ran su ("sudo su -": the
// sudo user). Otherwise the actor is unknown; the audit and journald
// collectors know more. Known gaps: commands typed in a "sudo -i" shell,
// and several su sessions open at once, stay unattributed rather than
// guessed.
//
// Event ids are derived from host, time (to the second), program, pid and
// a canonical form of the change (not the line's text), so the same line
// read twice, or either of two twin lines read alone, gives the same id.
//
// Unreadable lines (no known layout, a bad timestamp, a tool message that
// does not parse) and lines longer than max_line_bytes are reported as
// collectors.Problem with file:line and skipped; they never stop the
// stream. Lines of programs other than the account tools, sudo and su are
// rejected after a few byte comparisons, without allocating.
//
// # Collector
//
// The collector follows its files by name through the tailer it shares
// with the auditd collector (collectors/internal/tail; see Collector): it survives
// rename rotation (draining the old file first), copytruncate, a restart
// while the position is in path.1, files that do not exist yet, and partial
// last lines. Its Position is JSON (see position). A writer that is never
// told to reopen (no HUP) and keeps writing to the renamed file after it
// has been quiet for rotate_wait loses those lines to the collector.
//
// Twin lines are merged while they come from one process: events are held
// back until a change line of another process arrives, or flush_after of
// quiet, or the end of input.
package authlog
