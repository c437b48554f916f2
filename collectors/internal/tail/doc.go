// Package tail follows log files by name for the file collectors
// (authlog, auditd): across rename rotation, copytruncate and restarts,
// with a Position that resumes exactly after the last line handled.
//
// # Following
//
// A Tailer runs one loop for a set of Files: fsnotify on their
// directories wakes it (events for other files there, such as syslog, do
// not), a poll every Config.PollInterval is the safety net, and a timer
// serves held-back lines and draining rotated files. Each File is
// identified by device, inode and a SHA-256 fingerprint of its first
// 1024 bytes (fewer while it is shorter):
//
//   - rename rotation (logrotate's create, auditd's num_logs): the old
//     file is read to its end through the open descriptor until it has
//     been quiet for Config.RotateWait, then the new file from offset 0;
//   - copytruncate: the file is shorter than what was read, or its head
//     no longer matches the fingerprint; reading starts over at 0;
//   - restart: the saved file is looked for at path, then at path.1
//     (also as the copy a copytruncate made while the consumer was down),
//     and read from the saved offset; a .1 is drained before the file at
//     path; .gz files are never read; a file rotated away further is
//     reported as a Problem and the current file read from its start;
//   - a missing file is waited for; a partial last line waits for its
//     newline, except at the end of a drained rotated file.
//
// # Consumers
//
// Follow is the single-file API: one callback per line with the Position
// after it, and an idle callback when the lines stop for
// Config.IdleAfter (auditd uses it). Run with Hooks is the API of
// consumers that need more: several files in one Position, re-reading
// context before the resume offset, and their own per-file state reset
// when the file changes (authlog). The lines are bounded by
// Config.MaxLineBytes: a longer one is reported and skipped to its
// newline, never buffered whole. LineReader, the bounded line splitter,
// also serves one-shot parsers.
//
// # Position
//
// Position is JSON, {"v":1,"files":[FilePos...]}; a consumer may extend
// the entries by embedding FilePos. See FilePos for the fields.
package tail
