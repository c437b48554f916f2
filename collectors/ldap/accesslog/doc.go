// Package accesslog is the ldap_accesslog collector: it tails OpenLDAP's
// slapo-accesslog database (cn=accesslog) and turns every logged write
// into provtrail events, with secrets redacted.
//
// # Reading
//
// The collector binds as a read-only audit account and runs an RFC 4533
// refresh-and-persist sync search on the log database for
// (objectClass=auditWriteObject): failed writes are included when the
// overlay logs them (logsuccess FALSE). The log database needs the
// syncprov overlay; without it the server refuses the (critical) Sync
// Request control and the collector polls instead, every poll_interval,
// with paged searches for (entryCSN>=last). On any error it reconnects
// with exponential backoff and resumes.
//
// # Position
//
// A Position is JSON: the server's last sync cookie that covers only fully
// emitted entries, the newest entryCSN read per server id (entryCSN orders
// commits and is unique; multi-provider logs carry several server ids),
// and, when the agent committed only some of the events of one log entry,
// how many. Resuming skips entries at or below the stored CSNs, so a
// resumed run emits nothing twice even when the server re-sends entries
// (a refresh without cookie after e-syncRefreshRequired, or a poll).
//
// # Gaps
//
// Before each (re)connect the collector reads minCSN on the log's base
// entry: the newest CSN slapd's logpurge removed. A stored CSN below it
// means entries were purged before they were read; that is reported once
// per server id as a collectors.Problem whose Reason starts with "gap:"
// and logged at error level. Reading then goes on from what remains.
//
// # Events
//
// See package norm for the mapping. Event ids derive from the server URL
// and reqStart (unique per server, never reused), so re-reads dedupe.
// reqMod and reqOld values of secret attributes (userPassword, pwdHistory,
// authPassword, Samba and Kerberos keys, configured secret_attributes; any
// case, options and OID forms) and values that look like password hashes
// become event.Redacted, in Changes and in Raw alike; no value of them is
// ever logged.
package accesslog
