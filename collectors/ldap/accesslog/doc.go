// Package accesslog is the ldap_accesslog collector: it tails OpenLDAP's
// slapo-accesslog database (cn=accesslog) with an RFC 4533
// refresh-and-persist sync search, resuming from the sync cookie, falls
// back to polling by entryCSN when the log has no syncprov, reports
// entries purged before they were read, and turns every logged write into
// provtrail events with secrets redacted.
package accesslog
