// Package changelog is the ldap_changelog collector for 389 Directory
// Server, Red Hat Directory Server and FreeIPA: it polls the retro
// changelog (cn=changelog) by changeNumber with paged searches, keeps the
// last number as its position, reports numbers trimmed before they were
// read and changelog resets (from the root DSE's firstchangenumber and
// lastchangenumber), optionally wakes on a persistent search, and turns
// each change record into provtrail events with secrets redacted.
package changelog
