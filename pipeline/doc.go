// Package pipeline is the agent's path from collector records to batches
// central has acknowledged:
//
//	collector --Emit--> redact --> batch (events, bytes, wait)
//	   --> sign (signer.Chain) --> spool (append + fsync, with positions)
//	   --> commit positions --> forward (HTTPS) --> central's receipt
//	   --> ack in spool (segment removed), receipt kept
//
// # Guarantees
//
//   - Nothing is lost: a record's position is durable only in the same
//     spool entry as the signed batch holding the record (Recover applies
//     the positions of every spooled entry at start-up), and a spool
//     entry is acknowledged only after central answered and the positions
//     file covers it.
//   - Nothing is duplicated: a restart resumes each collector after the
//     last spooled record, so no record is batched twice; a batch sent
//     again after a crash is byte-identical, and central answers
//     "duplicate".
//   - Backpressure, not loss: when the spool is full the batcher waits for
//     space, Emit blocks, and collectors stop reading.
//   - Batches go to central strictly in chain order, one at a time. A batch
//     central rejects as malformed or forged is kept under
//     state_dir/rejected with central's answer, logged at error level, and
//     not retried; one refused for reasons that would apply to every batch
//     (wrong audience, agent not enrolled, 401/404) stays spooled and is
//     retried slowly.
package pipeline
