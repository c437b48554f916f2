// Package entra collects user-provisioning events from Microsoft Entra ID:
// the Microsoft Graph directory audit log (GET /v1.0/auditLogs/
// directoryAudits: users, group and role membership, password resets,
// account enable/disable, MFA methods, service principal credentials) and,
// for the subscriptions named in the config, Azure RBAC role assignments
// from the Azure Activity Log.
//
// Both are plain REST over net/http with an OAuth 2.0 client-credentials
// token (golang.org/x/oauth2/clientcredentials); the Microsoft Graph SDK
// compiles for minutes and brings 194 MB of source for one GET. Windows
// are filtered on activityDateTime / eventTimestamp and paged with the
// provider's nextLink, which is only followed to the configured host.
package entra
