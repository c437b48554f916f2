// Package gcpaudit collects IAM changes from Google Cloud Admin Activity
// audit logs through the Logging API's entries:list (POST
// /v2/entries:list, oldest first, page tokens): service accounts and
// their keys, and every SetIamPolicy binding delta as a privilege grant or
// revoke, read from both places Google logs them
// (protoPayload.serviceData.policyDelta and
// protoPayload.metadata.datasetChange).
//
// Plain net/http with golang.org/x/oauth2/google for the token: the typed
// google.golang.org/api client weighs 22 MB and does not retry 429 either.
// De-duplication uses (logName, insertId), as Logging itself does.
package gcpaudit
