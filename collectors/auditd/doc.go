// Package auditd is the collector for the Linux audit log
// (/var/log/audit/audit.log): the account-management records that
// shadow-utils, PAM, passwd and semanage send to the kernel audit
// subsystem, with the login user (auid) that survives sudo and su.
//
// # Records
//
// ADD_USER, DEL_USER, ADD_GROUP, DEL_GROUP, USER_MGMT, GRP_MGMT,
// USER_CHAUTHTOK, GRP_CHAUTHTOK, USER_ACCT, ACCT_LOCK, ACCT_UNLOCK and
// USER_ROLE_CHANGE become events, in both op= vocabularies: Debian 12 /
// shadow <= 4.17.3 ("op=adding user id=1001", gpasswd's whole syslog
// sentence as the op) and RHEL / shadow >= 4.17.4 ("op=add-user
// acct=..."). The op value is unquoted and may hold spaces; it runs to the
// next known key. Values audit hex-encodes (acct, cmd, exe, grp, ...) are
// decoded. auditd's ENRICHED suffix after 0x1d (UID="root" AUID="pt_admin"
// ID="pt_alice") supplies names, with the caveat that auditd resolves them
// when it writes the record, against the host's own passwd: a chroot's or
// a just-deleted account can show as "unknown(N)" or as another name.
//
// Records sharing a msg=audit(SEC.MS:SERIAL) stamp are one audit event
// (kernel events span SYSCALL, PATH, ..., EOE); twin records one process
// writes for one change (groupadd's three ADD_GROUP records, group and
// shadow-group updates) are merged into one event whose Raw keeps each
// record. Records that name too little to be a change (4.13's "adding user
// to group" does not say which group) are left to the other collectors.
//
// The actor is auid (the login user) when set, with the session (ses) and
// the effective user as OnBehalfOf; otherwise the process's uid as a
// system actor. Origin carries exe, pid, terminal and addr; outcome comes
// from res=, except for 4.13's usermod -L/-U which prints res=failed on
// success.
//
// # Following the file
//
// The collector reads through a LineFollower, by default the tailer it
// shares with authlog (collectors/internal/tail): auditd's own rotation
// (max_log_file_action = ROTATE renames audit.log to audit.log.1, .1 to
// .2 and so on up to num_logs, then opens a new audit.log), logrotate's
// rename or copytruncate, a restart whose position is in audit.log.1,
// fsnotify wake-ups with a poll every poll_interval. Held events are
// flushed when the file has been quiet for a second. Its Position is the
// tailer's: {"v":1,"files":[{"path":...,"device":...,"inode":...,
// "fingerprint":...,"offset":...}]}, taken after each event's last record.
// Source.File and Source.Offset name the file a record was read from
// (audit.log.1 while a rotated log is drained) and its byte offset there;
// with another LineFollower, which hands over lines only, the offset
// counts from where the run started reading.
package auditd
