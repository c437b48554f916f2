package central

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/provtrail/provtrail/central/entitlements"
	"github.com/provtrail/provtrail/signer"
)

// ErrNotFound is returned by Store lookups that find nothing.
var ErrNotFound = errors.New("not found")

// Store is what central needs from its database. The SQLite implementation
// is in this package (OpenSQLite); a PostgreSQL one can satisfy the same
// contract.
//
// CommitBatch is the only way events enter the store, and it MUST write the
// batch (with its body, which holds the events), the new stream state and
// the agent's last-seen time in one transaction, durably, before it returns
// nil. The events become queryable when the store has indexed them, soon
// after (the SQLite store indexes in the background, and after a restart
// from the stored bodies).
type Store interface {
	Agent(ctx context.Context, id string) (Agent, error)
	PutAgent(ctx context.Context, a Agent) error
	SetAgentStatus(ctx context.Context, id string, status AgentStatus) error
	Agents(ctx context.Context) ([]Agent, error)

	Stream(ctx context.Context, agentID, streamID string) (Stream, error)
	Streams(ctx context.Context, agentID string) ([]Stream, error)
	// SetStreamStatus records a chain problem (gap, fork) on a stream
	// without touching its state; it creates the row if needed.
	SetStreamStatus(ctx context.Context, agentID, streamID string, status ChainStatus, detail string) error

	CommitBatch(ctx context.Context, w *BatchWrite) (CommitResult, error)
	BatchBySeq(ctx context.Context, agentID, streamID string, seq uint64) (Batch, error)
	BatchByLogIndex(ctx context.Context, index uint64) (Batch, error)
	// ForEachBatch calls fn for every stored batch in log-index order.
	ForEachBatch(ctx context.Context, fn func(Batch) error) error
	// BatchEvents returns the stored events of one batch in body order.
	BatchEvents(ctx context.Context, batchID int64) ([]StoredEvent, error)
	MaxLogIndex(ctx context.Context) (int64, error)

	AddEvidence(ctx context.Context, ev Evidence, alert Alert) error
	Alerts(ctx context.Context, limit int) ([]Alert, error)
	Evidence(ctx context.Context, id int64) (Evidence, error)

	QueryEvents(ctx context.Context, q EventQuery) (EventPage, error)

	CreateToken(ctx context.Context, t EnrollToken) error
	// UseToken consumes one use of the token with the given hash, if it is
	// still valid at now, and records the agent in the same transaction.
	UseToken(ctx context.Context, hash []byte, now time.Time, a Agent) (EnrollToken, error)

	Close() error
}

// AgentStatus is whether an agent's batches are accepted.
type AgentStatus string

// Agent statuses.
const (
	AgentActive  AgentStatus = "active"
	AgentPending AgentStatus = "pending" // enrolled by token, waiting for approval
	AgentRevoked AgentStatus = "revoked"
)

// Agent is an enrolled agent.
type Agent struct {
	ID string
	// PublicKey is the agent's long-term identity key, PEM (SPKI).
	PublicKey  []byte
	Source     string // "config" or "token"
	Status     AgentStatus
	Hostname   string
	EnrolledAt time.Time
	LastSeen   time.Time
}

// ChainStatus is the health of one agent stream's hash chain.
type ChainStatus string

// Chain statuses.
const (
	ChainOK   ChainStatus = "ok"
	ChainGap  ChainStatus = "gap"
	ChainFork ChainStatus = "fork"
)

// Stream is the stored state of one (agent, stream) chain.
type Stream struct {
	AgentID  string
	StreamID string
	// LastSeq is the seq of the last accepted batch (-1: none yet).
	LastSeq int64
	// State is the signer package's encoding of the chain state that
	// verifies the next batch.
	State         []byte
	Status        ChainStatus
	StatusDetail  string
	StatusSince   time.Time
	LastBatchAt   time.Time
	LastEventTime time.Time
}

// Batch is a stored, accepted batch.
type Batch struct {
	ID         int64
	AgentID    string
	StreamID   string
	Seq        uint64
	LogIndex   uint64
	HeaderHash []byte
	// Record is the signer.HeaderRecord (JSON) that classifies a later
	// batch with the same seq as duplicate or fork.
	Record []byte
	// Envelope is the DSSE envelope over the header: the log leaf.
	Envelope []byte
	// Body is the batch body exactly as signed, in Encoding.
	Body       []byte
	Encoding   signer.Encoding
	Events     int
	ReceivedAt time.Time
}

// BatchWrite is one accepted batch to commit.
type BatchWrite struct {
	Batch  Batch
	Events []StoredEvent
	// Stream is the stream state after this batch.
	Stream Stream
}

// CommitResult reports what CommitBatch stored.
type CommitResult struct {
	BatchID int64
	// EventsStored counts the events of the batch. When they are indexed,
	// an event whose (time, id) is already stored from an earlier batch is
	// not indexed again (EventsSkipped, counted by the indexer).
	EventsStored  int
	EventsSkipped int
}

// StoredEvent is an event as indexed in the store.
type StoredEvent struct {
	RowID   int64
	BatchID int64
	// Ord is the event's line number (from 0) in its batch body.
	Ord     int
	EventID string
	Time    time.Time
	Action  string
	Outcome string
	Actor   string
	User    string
	Group   string
	// Privileges are newline-joined.
	Privileges string
	System     string
	Host       string
	// JSON is the event exactly as it appears in the batch body. The
	// store keeps only the body; reads fill JSON from it.
	JSON []byte

	// ents are the event's entitlement changes (their LogIndex unset),
	// derived when the event line was parsed (parsed); the indexer
	// derives them from JSON for events that were not.
	ents   []entitlements.Change
	parsed bool
	// names are the event's actor, user and group names ("" when it has
	// none; Actor, User and Group fall back to ids), known when the line
	// was parsed here: alert rules then need not read them from JSON.
	names *eventNames
}

type eventNames struct{ actor, user, group string }

// EventQuery selects events. Empty fields match everything.
type EventQuery struct {
	Actor, User, Group, Action, System, Host string
	Since, Until                             time.Time
	// After is the cursor returned as EventPage.Next.
	After string
	Limit int
}

// EventPage is one page of query results, oldest first.
type EventPage struct {
	Events []StoredEvent
	// Next is the cursor for the following page, empty at the end.
	Next string
}

// Evidence is a rejected batch kept because it proves misbehaviour: a fork
// (two different batches for one place in a chain) or a forgery (a batch
// claiming an enrolled agent that its key did not sign).
type Evidence struct {
	ID         int64
	Kind       string // "fork" or "forgery"
	AgentID    string
	StreamID   string
	Seq        uint64
	Reason     string
	Envelope   []byte
	Body       []byte
	RemoteAddr string
	ReceivedAt time.Time
	// ConflictsWith is the log index of the accepted batch it contradicts
	// (-1 when none).
	ConflictsWith int64
}

// Alert is a record raised for the security team.
type Alert struct {
	ID         int64
	Time       time.Time
	Kind       string // fork, forgery, gap, silent_agent, ...
	Severity   string
	AgentID    string
	StreamID   string
	Message    string
	EvidenceID int64
	// AlertID is the engine's alert id (rule alerts and built-ins raised
	// through the engine); empty for alerts recorded with evidence.
	AlertID string
	// Details is the engine's full alert (JSON), naming the events (ids
	// and log indexes) that fired it.
	Details json.RawMessage
	// AckedAt and AckedBy record the acknowledgement (zero: open).
	AckedAt time.Time
	AckedBy string
}

// EnrollToken is a one-time or limited-use enrollment token. Only its
// SHA-256 hash is stored.
type EnrollToken struct {
	Hash            []byte
	UsesLeft        int
	ExpiresAt       time.Time
	RequireApproval bool
	CreatedAt       time.Time
	Note            string
}
