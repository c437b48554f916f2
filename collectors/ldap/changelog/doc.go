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
// number, so a reused number never collides with an old event.
//
// # Events
//
// The actor is the modifiersName (creatorsName for an add) written inside
// the "changes" value; the entry's own modifiersName is the plugin.
// Deletes carry no actor (Actor.Type unknown) and no old values, so the
// target is classified by its DN (uid= is a user, ou=groups/cn=groups a
// group). "changes" is unfolded and base64-decoded before secret
// attributes (userPassword, unhashed#user#password, Kerberos and NT keys,
// configured secret_attributes) are redacted, in Changes and in Raw.
package changelog
