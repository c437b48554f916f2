// Package central is provtrail's receiving service: it verifies signed
// batches from agents against their enrolled keys and per-stream chain
// state, appends every accepted batch header to a tamper-evident
// transparency log (RFC 6962 tiles via tessera, C2SP signed-note
// checkpoints), stores and indexes the events in SQLite, and serves
// receipts, proofs, queries and the agents' chain health over HTTP.
//
// # Guarantees
//
// A batch is acknowledged (HTTP 200, verdict "accepted") only after its
// header is durably sequenced in the log and its events, body and the new
// stream state are committed to the store in one transaction. A resent
// batch gets verdict "duplicate" and the original receipt; it is stored
// once. A rejected batch leaves nothing in the store; fork and forgery
// evidence is kept aside in the evidence table and raised as an alert.
//
// Checkpoints are published asynchronously (DefaultCheckpointInterval);
// agents fetch inclusion proofs for their receipts later.
package central
