// Package spool is the agent's durable outbox: an append-only,
// checksummed, segment-file write-ahead log of signed batches waiting for
// central's acknowledgement.
//
// # Guarantees
//
//   - Append returns only after the entry's bytes and its frame are written
//     and fsynced (unless Config.NoSync, for benchmarks of the rest of the
//     pipeline). A caller MUST NOT commit any source position covered by an
//     entry before Append for that entry has returned without error.
//   - Entries are stored and returned byte for byte: a resend after a crash is
//     identical to the first send.
//   - Entries get consecutive indexes, starting at 1 for a new spool, and are
//     read back in index order.
//   - An entry leaves the spool only through Ack (after central acknowledged
//     it). Nothing is dropped when the spool is full: Append returns ErrFull
//     and WaitForSpace blocks until acknowledgements free enough room.
//   - Recovery never silently deletes good data. A torn tail (a crash in the
//     middle of an append) is cut off after the segment is copied aside to
//     NAME.broken-TIMESTAMP; damage in the middle of a segment is skipped over
//     (every valid frame after it is kept) and the segment is also copied
//     aside. Both are logged at error level and counted in Stats.
//
// # On-disk format
//
// The spool directory holds segment files named seg-<first index, 16 hex
// digits>.wal, so that they sort in index order. A segment starts with an
// 8-byte file header, "PTSPOOL1", followed by frames. Every frame starts on
// an 8-byte boundary:
//
//	offset size
//	0      4    payload length n, little endian (frames with n = 0 and
//	            type 0 are never written: zero bytes are never a valid frame)
//	4      4    CRC-32C (Castagnoli) of bytes 8..24+n of the frame
//	8      1    type: 1 = entry, 2 = ack
//	9      7    zero
//	16     8    index, little endian: the entry's index (type 1), or the
//	            highest acknowledged index (type 2)
//	24     n    payload (type 1: the entry bytes; type 2: empty)
//	24+n   p    zero padding to the next multiple of 8
//
// Ack frames are written without an fsync of their own: losing one in a
// crash only means the acknowledged entries are sent again, and central
// answers "duplicate" for a byte-identical batch. When every entry is
// acknowledged and the active segment has grown past its rotation size, a new
// segment named after the next index is started and the old ones are
// removed; the name of the newest segment therefore also records the next
// index to use when every entry in it has been acknowledged and removed.
//
// # Recovery
//
// Open reads every segment in name order, checking each frame's CRC and that
// entry indexes increase. In the last segment, the first bad frame with no
// valid frame after it is a torn tail: the segment is copied to .broken-*,
// truncated to its last good frame, and fsynced. Anything else that fails its
// checksum is damage: the valid frames after it (found by scanning the
// following 8-byte boundaries) are kept, the segment is copied aside, and the
// bytes are left in place. Indexes missing because of damage are reported;
// the batches they held are gone and central will report the gap.
//
// # Operating
//
//  1. A "torn tail cut off" warning after a crash or power loss is
//     expected: the interrupted append never returned, its records were
//     never committed, and the collector reads them again.
//  2. A "damaged frames skipped" or "entries lost to damage" error is not:
//     the disk returned bytes that fail their checksum. The batches in the
//     damaged range are gone; central reports the gap. Check the disk.
//  3. NAME.broken-TIMESTAMP files are byte-for-byte copies of a segment as
//     it was found, kept as evidence. The spool never reads them; remove
//     them once investigated.
//  4. Never delete segment files to "fix" a spool: what they hold has not
//     reached central. If the agent's host is being retired, let the agent
//     drain (provtrail_agent_spool_pending_batches reaches 0) first.
package spool
