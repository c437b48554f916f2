// Package event defines provtrail's canonical record of one change to
// who-has-access (schema v1): its fields, the action vocabulary, the mapping
// of each action to OCSF 1.8 and ECS, stable event ids, and validation.
//
// The JSON field names of Event are a public contract (docs/schema.md). An
// Event is what the agent signs and central stores; it never carries a
// password value, hash, token or key: collectors replace those with
// Redacted before an event leaves them.
package event
