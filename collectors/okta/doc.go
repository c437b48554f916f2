// Package okta collects user-provisioning events from the Okta System Log
// (GET /api/v1/logs): user lifecycle, group membership, admin privilege
// grants, password and MFA resets, API tokens.
//
// It reads bounded [since, until) windows in ascending order and follows
// the system-generated next links inside a window; the next link of the
// page being read is part of the Position, so a restart resumes on that
// page. Okta's own warning that bounded queries may miss delayed events is
// answered by the shared window discipline (settle lag, overlap, re-scan)
// and de-duplication on the event's uuid. Credentials: an SSWS API token
// (token, token_file or $OKTA_CLIENT_TOKEN), or an OAuth service app with
// private_key_jwt (the oauth block; scope okta.logs.read). They are sent
// only to the configured org; a next link that points elsewhere is refused.
package okta
