// Package workspace collects user, group and admin-role changes from the
// Google Workspace Admin SDK Reports API (activities.list for the "admin"
// application): user lifecycle, suspension, password and 2SV changes, group
// membership, super-admin and delegated admin role assignments.
//
// The API answers newest first, within a page and across pages, and
// delivers most admin events within minutes but a few much later: windows
// carry an explicit endTime, every page is drained before the cursor moves
// (the data loss Elastic fixed in its integration), and the shared
// overlap and re-scan catch stragglers. De-duplication fingerprints the
// whole id object {time, uniqueQualifier, applicationName, customerId}.
// Credentials: a service account with domain-wide delegation impersonating
// an admin (subject), through golang.org/x/oauth2/google.
package workspace
