// Package changelog is the ldap_changelog collector for 389 Directory
// Server, Red Hat Directory Server and FreeIPA: it reads the retro
// changelog (cn=changelog) and turns each change record into provtrail
// events, with secrets redacted.
//
// # Reading
//
// Every poll_interval (or sooner, when the optional persistent search
// signals a new entry) the collector reads firstchangenumber and
// lastchangenumber from the root DSE, then searches
// (&(objectClass=changeLogEntry)(changeNumber>=N+1)(changeNumber<=N+W)) in
// pages and handles the entries in numeric order. Holes in the numbering
// are normal and skipped. A server that refuses the persistent search
// (OpenLDAP, 389-DS without it) is polled only. Errors reconnect with
// exponential backoff.
//
// # Position
//
// A Position is JSON {"v":1,"change_number":N}: every event of change N
// and before was emitted. Changes that yield no event (internal
// passwordgraceusertime updates, entries that are neither users nor
// groups) do not move it; they are read again, to no effect, after a
// restart.
//
// # Gaps and resets
//
// firstchangenumber above N+1 means changes were trimmed
// (nsslapd-changelogmaxage) before they were read: reported once as a
// collectors.Problem whose Reason starts with "gap:", and reading goes on
// from firstchangenumber. lastchangenumber below N means the changelog was
// recreated: reported as "changelog reset", and reading starts again at
// firstchangenumber. Event ids include changeTime and targetDn besides the
// number, so a reused number never collides with an old event. Unless the
// change at the resume point is still there: then the root DSE is wrong
// (389-DS 2.3.1 on LMDB, upstream issue 6915, was recorded reporting
// lastchangenumber 0, then 1, over changes 1 to 13), which is reported
// once, and reading goes on by changeNumber. The window after the resume
// point is searched on every poll, whatever the bounds say.
//
// # What the changelog does not say
//
// 389-DS records neither old values nor a deleted entry's classes. The
// collector remembers, for each entry whose add it read, its object
// classes and member, uniqueMember and memberUid values as later changes
// leave them (bounded: 200,000 entries, 100,000 values each). So a
// whole-attribute replace or delete of members becomes member adds and
// removes, a delete is classified by the entry's classes, and a deleted
// privileged group's members lose the privilege. On resume it first reads
// the changes still in the changelog up to the resume point, without
// emitting, to rebuild that memory; after a gap or reset it forgets it.
// Entries created before the oldest change are handled by DN shape, and a
// replace of their members is a plain group.modify.
//
// # Replication
//
// Each supplier of a replicated topology logs every change, the other
// suppliers' with isReplicated: TRUE (when the plugin is configured with
// "nsslapd-attribute: isReplicated"; FreeIPA's configuration does not
// have it). skip_replicated = true, for a collector on each supplier,
// emits only the changes made on that supplier; without isReplicated in
// the entries it cannot, which is reported once.
//
// # Events
//
// The actor is the modifiersName (creatorsName for an add) written inside
// the "changes" value; the entry's own modifiersName is the plugin. A
// modify without one is the server's own write (passwordgraceusertime;
// passwordRetryCount and accountUnlockTime on failed binds): actor
// "389-ds", type system; a password attribute it writes so is a re-hash
// on bind (nsslapd-enable-upgrade-hash), a user.modify, not a reset.
// accountUnlockTime set is a lockout (user.lock), removed an unlock. The
// Password Modify extended operation (ldappasswd) is recorded with
// modifiersname cn=server,cn=plugins,cn=config whoever the client was:
// the actor is unknown (that DN its ID) and the event a password.reset. Plugins (MemberOf, Referential Integrity) write under
// their own DN, type system. Deletes carry no actor (Actor.Type unknown). "changes" is unfolded and base64-decoded before secret
// attributes (userPassword, unhashed#user#password, Kerberos and NT keys,
// configured secret_attributes) are redacted, in Changes and in Raw.
package changelog
