// Package central is provtrail's receiving service: it verifies signed
// batches from agents against their enrolled keys and per-stream chain
// state, appends every accepted batch header to a tamper-evident
// transparency log (RFC 6962 tiles via tessera, C2SP signed-note
// checkpoints), stores the batches and indexes their events in SQLite, and
// serves receipts, proofs, queries and the agents' chain health over HTTP.
//
// # Guarantees
//
// A batch is acknowledged (HTTP 200, verdict "accepted") only after its
// header is durably sequenced in the log and the batch (header envelope and
// body, which holds the events) and the new stream state are committed to
// the store in one transaction. Acks never wait for a checkpoint to be
// published (DefaultCheckpointInterval): agents fetch inclusion proofs for
// their receipts later. Events are indexed for queries right after the
// commit by the store's indexer, in larger transactions, into index files
// of their own (events.db, entitlements.db, each with its own writer, so
// indexing runs beside batch commits and never delays an ack); after a
// crash the indexer resumes from each file's watermark using the stored
// bodies, and a missing index file is rebuilt from them. When the index
// backlog passes IngestConfig.MaxIndexBacklog new batches get 503 with
// Retry-After.
//
// A resent batch gets verdict "duplicate" and the original receipt; it is
// stored once. A rejected batch leaves nothing in the store; fork and
// forgery evidence is kept aside in the evidence table and raised as an
// alert. A leaf logged just before a crash, whose batch never reached the
// store, is reused when the agent resends the batch (Ingester.Reconcile).
//
// # HTTP API
//
//	POST /v1/batches                      signer wire batch -> Receipt (JSON)
//	POST /v1/enroll                       EnrollRequest -> EnrollResponse
//	GET  /v1/checkpoint                   latest signed checkpoint (text)
//	GET  /v1/proofs/index/{i}             Proof (inclusion, with c2sp tlog-proof text)
//	GET  /v1/proofs/agents/{a}/streams/{s}/seqs/{n}
//	GET  /v1/consistency?from=M&to=N      ConsistencyProof
//	GET  /v1/batches/index/{i}            StoredBatch (envelope and body, for auditors)
//	GET  /v1/log/checkpoint, /v1/log/tile/...  the log's tlog-tiles resources
//	GET  /v1/events?actor=&user=&group=&action=&system=&host=&since=&until=&after=&limit=
//	GET  /v1/alerts?rule=&severity=&acknowledged=&since=&limit=
//	POST /v1/alerts/{id}/ack              (client certificate or loopback)
//	GET  /v1/entitlements?group=&user=&system=
//	GET  /v1/entitlements/drift?from=&to=
//	POST /v1/agents/{id}/status           signed status report (central/status)
//	GET  /v1/agents, /healthz, /readyz, /metrics
//
// # Alerts and entitlements
//
// Alert rules (central/alerts) run over events once they are indexed; the
// engine's windows are kept in data_dir/alert-state.json, so thresholds
// and sequences span restarts. Built-in alerts: fork, forgery, chain gap
// open past gap_timeout, stream reset, agent silent past its
// heartbeat_interval plus silence_margin (raised once per silence and
// acknowledged by central when the agent is heard from again), and the
// source gaps and full spools agents report in signed status reports.
// The indexer maintains the entitlement table (who holds what now) and
// its history in entitlements.db, one stage behind the events: a stage
// applies the changes of the events the previous one stored (an event
// re-read from an earlier batch is stored once and applied once).
//
// Audit (provtrail verify) re-checks all of it offline or over this API.
package central
