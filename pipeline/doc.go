// Package pipeline is the agent's path from collector records to batches
// central has acknowledged:
//
//	collector --Emit--> [batching goroutine] redact --> correlate (host
//	   collectors) --> encode NDJSON --> batch (events, bytes, wait)
//	   --> [sealing goroutine] sign (signer.Chain) --> spool (append +
//	   fsync, with the positions the batch covers)
//	   --> [forwarder] HTTPS to central --> receipt kept
//	   --> positions file written --> entry acknowledged in the spool
//
// Batching overlaps with sealing: the next batch fills while the previous
// one is signed and fsynced, strictly in order.
//
// # Guarantees
//
//   - Nothing is lost: a record's position becomes durable only in the same
//     spool entry as the signed batch holding the record (Recover applies
//     the positions of every spooled entry at start-up), and a spool entry
//     is acknowledged only after central answered and the positions file
//     covers it. If the spool's tail is damaged and cut off, the collectors
//     are moved back to the newest surviving position and read the lost
//     records again.
//   - Nothing is duplicated: a restart resumes each collector after the
//     last spooled record, so no record is batched twice; a batch sent
//     again after a crash is byte-identical, and central answers
//     "duplicate".
//   - Backpressure, not loss: when the spool is full the sealer waits for
//     space, the batcher waits for the sealer, Emit blocks, and collectors
//     stop reading. The spool logs it and the agent's metrics show it.
//   - Secrets are replaced by event.Redacted (see Redact) before an event
//     is correlated, encoded, spooled, sent or logged.
//   - Batches go to central strictly in chain order, one at a time, with
//     exponential backoff and jitter on failures and Retry-After honoured.
//     A batch central rejects as malformed or forged is kept under
//     state_dir/rejected with central's answer, logged at error level, and
//     not retried; one refused for reasons that would apply to every batch
//     (wrong audience, agent not enrolled or not approved, 401/404) stays
//     spooled and is retried slowly.
//
// # State directory
//
//	spool/                 segment files of signed batches (package spool)
//	positions.json         committed collector positions (package positions)
//	chain/                 the signer's chain state (package signer)
//	receipts/receipts.ndjson  central's answer to every batch, one per line
//	receipts/last.json     the newest acknowledged batch's envelope
//	rejected/              batches central rejected, with its answer
package pipeline
