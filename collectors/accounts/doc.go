// Package accounts is the collector that finds account changes by diffing
// snapshots of etc/passwd, etc/shadow, etc/group, etc/gshadow, etc/sudoers
// and etc/sudoers.d under a root: the only source that sees direct edits,
// vipw, newusers, chpasswd -e and changes made while the agent was down.
//
// A snapshot is taken when fsnotify reports a change in etc/ (the
// shadow-utils tools replace files by rename, so the directory is watched,
// not the files), on a periodic poll, and at start-up, when it is compared
// with the last snapshot kept in the state dir. Differences become events:
// user and group create, delete, modify (which fields) and rename (the UID
// or GID kept), membership add and remove (privilege grant and revoke for
// privileged groups), lock and unlock, password change, and sudoers
// statements added or removed as privilege grant and revoke. The actor is
// unknown: a file does not say who changed it.
//
// Password hashes are never stored or sent. A snapshot keeps an HMAC-SHA256
// digest of each hash under a random per-host key (hmac.key in the state
// dir), enough to see that a hash changed; events carry event.Redacted.
//
// The Position names two snapshots and how many of the changes between
// them were emitted, so a restart resumes inside a diff; snapshots are
// numbered and the last DefaultKeep are retained.
package accounts
