// Package window is the reading discipline every cloud and SaaS audit
// collector shares, written once: closed time windows that end a settle lag
// before now, every page of a window drained before the cursor moves,
// windows that overlap the previous one, a periodic re-scan of the recent
// past for late arrivals, de-duplication by event id kept in the collector's
// state directory for the overlap horizon, the provider's throttling
// honoured, and a progress line while backfilling.
//
// It also holds what every cloud collector is assembled from, so that a
// source's folder keeps only what is its own (endpoints, credentials,
// mapping): NewFactory builds the collectors.Factory, NewEnv fills in a
// collector's defaults and makes its HTTP clients and its Collector (an
// Engine behind the collectors.Collector contract), and
// HTTP.Send with PageRefused covers one paced request and a refused page
// token.
//
// # Exactly once across crashes
//
// A source's event id (CloudTrail eventID, Okta uuid, ...) becomes the
// event's id through event.NewID, so the same provider record always has the
// same id. Every record the Engine emits carries a sequence number in its
// Position. Before a page's records are emitted their ids are appended, with
// their sequence numbers, to a write-ahead log in the state directory and
// fsynced. When Run starts from a committed Position with sequence S, log
// entries above S (emitted but never committed: lost in the crash) are
// discarded and everything at or below S is kept, so re-reading the window
// skips exactly the records that were committed.
//
// Windows that emit nothing cannot commit a Position (a Record always
// carries an event), so after each drained window the Engine appends a
// progress mark holding its whole state and the current sequence number. A
// mark whose sequence number equals the committed one was written after the
// last committed record and before any record that was lost, so Run resumes
// from the newest such mark: a quiet source does not re-read days of empty
// windows after a restart.
//
// If the state directory is lost, Run resumes from the Position alone and
// the overlap may re-emit a few records; they keep their ids, so downstream
// de-duplication still holds.
package window
