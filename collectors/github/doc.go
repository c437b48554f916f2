// Package github collects membership and role changes from a GitHub
// organisation's audit log (GET /orgs/{org}/audit-log, GitHub Enterprise
// Cloud or Server): organisation and team membership, member and
// maintainer roles, repository collaborators, billing managers, personal
// access token grants.
//
// Plain net/http: one GET with a search phrase and Link-header cursors
// does not need go-github. Windows are read with
// phrase=created:FROM..TO, order=asc, following rel="next" links (the
// `after` cursor) only to the configured host; de-duplication uses
// _document_id. Rate limits (1,750 audit-log queries an hour) are paced and
// 403/429 replies with X-RateLimit-Reset or Retry-After are honoured.
package github
