package event

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// SchemaVersion is the version of the event schema this package implements.
const SchemaVersion = "1"

// Redacted replaces every secret (password value or hash, token, key
// material) in an event, including inside Raw.
const Redacted = "[REDACTED]"

// Outcome says whether the change happened.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeFailure Outcome = "failure"
	OutcomeUnknown Outcome = "unknown"
)

// Severity ranks how much attention an event deserves.
type Severity string

// Severities, lowest first.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// ActorType says what kind of principal made a change.
type ActorType string

// Actor types.
const (
	ActorHuman   ActorType = "human"
	ActorService ActorType = "service"
	ActorSystem  ActorType = "system"
	ActorUnknown ActorType = "unknown"
)

// Event is one change to who-has-access (schema v1).
type Event struct {
	// ID is stable for the same source record (see NewID).
	ID string `json:"id"`
	// Time is when the change happened, ObservedTime when the agent read it.
	// Both are UTC and marshal as RFC 3339 with nanoseconds.
	Time         time.Time `json:"time"`
	ObservedTime time.Time `json:"observed_time"`
	Action       Action    `json:"action"`
	Outcome      Outcome   `json:"outcome"`
	Severity     Severity  `json:"severity"`
	Actor        Actor     `json:"actor"`
	Target       Target    `json:"target"`
	Origin       Origin    `json:"origin"`
	Changes      []Change  `json:"changes,omitempty"`
	Source       Source    `json:"source"`
	// Raw is the original record (redacted). Where several records were
	// merged into one event, Raw holds them all, one per line, in the order
	// they were read.
	Raw  string `json:"raw,omitempty"`
	OCSF OCSF   `json:"ocsf"`
}

// Actor is who made the change.
type Actor struct {
	Name string `json:"name,omitempty"`
	// ID is the principal's identifier in its own system (cloud principal
	// id, LDAP DN, ARN).
	ID string `json:"id,omitempty"`
	// UID is the numeric POSIX user id where one is known.
	UID  *int64    `json:"uid,omitempty"`
	Type ActorType `json:"type,omitempty"`
	// Session identifies the login session or access key used.
	Session string `json:"session,omitempty"`
	// Auth says how the actor was authenticated or elevated (for example
	// "sudo", "su", "mfa", "simple_bind").
	Auth string `json:"auth,omitempty"`
	// OnBehalfOf is the account the actor acted as, e.g. sudo's target user.
	OnBehalfOf string `json:"on_behalf_of,omitempty"`
}

// Target is what the change applied to: a user, a group, privileges, or
// a combination (a membership change names both user and group).
type Target struct {
	User       *User    `json:"user,omitempty"`
	Group      *Group   `json:"group,omitempty"`
	Privileges []string `json:"privileges,omitempty"`
}

// User identifies a user account.
type User struct {
	Name  string `json:"name,omitempty"`
	ID    string `json:"id,omitempty"`
	UID   *int64 `json:"uid,omitempty"`
	Email string `json:"email,omitempty"`
}

// Group identifies a group.
type Group struct {
	Name string `json:"name,omitempty"`
	ID   string `json:"id,omitempty"`
	GID  *int64 `json:"gid,omitempty"`
}

// Origin is the system where the change was made and how it was reached.
type Origin struct {
	// System is the kind of system ("linux", "openldap", "389ds", "aws",
	// "gcp", "entra", "okta", "workspace", "github").
	System string `json:"system,omitempty"`
	// Instance names the system instance (LDAP server URL, AWS account, org).
	Instance  string `json:"instance,omitempty"`
	Host      string `json:"host,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	TTY       string `json:"tty,omitempty"`
	Program   string `json:"program,omitempty"`
	PID       int    `json:"pid,omitempty"`
}

// Change is one changed field. Old and New are empty where unknown, and
// Redacted where the value is a secret.
type Change struct {
	Field string `json:"field"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
}

// Source says where the agent read the record.
type Source struct {
	// Collector is the collector type ("authlog", "ldap_accesslog", ...).
	Collector string `json:"collector"`
	// Instance is the collector's configured name.
	Instance string `json:"instance,omitempty"`
	File     string `json:"file,omitempty"`
	// Offset is the byte offset of the (first) record in File.
	Offset *int64 `json:"offset,omitempty"`
	// Cursor is the source's own resume token where it has one.
	Cursor string `json:"cursor,omitempty"`
	// EventID is the source's own id for the record, where it has one.
	EventID string `json:"event_id,omitempty"`
}

// OCSF carries the OCSF 1.8 identifiers of the event's class and activity.
type OCSF struct {
	ClassUID    int `json:"class_uid"`
	ActivityID  int `json:"activity_id"`
	TypeUID     int `json:"type_uid"`
	CategoryUID int `json:"category_uid"`
}

// NewID derives an event id from the identity of the source record: the
// collector type, a namespace such as the host or tenant, and whatever
// identifies the record within it (the source's event id, or its time and
// content). The same record read twice gets the same id; the parts are
// length-prefixed so that different splits never collide.
func NewID(collector string, parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range append([]string{collector}, parts...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return hex.EncodeToString(sum[:16])
}

// Complete fills the fields derived from others: OCSF identifiers from
// Action, a default Severity and Outcome, and normalises both times to UTC.
// Collectors call it once an event is built.
func (e *Event) Complete() {
	e.Time = e.Time.UTC()
	e.ObservedTime = e.ObservedTime.UTC()
	if o, err := e.Action.OCSF(); err == nil {
		e.OCSF = o
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeUnknown
	}
	if e.Severity == "" {
		if info, ok := e.Action.Info(); ok {
			e.Severity = info.DefaultSeverity
		} else {
			e.Severity = SeverityInfo
		}
	}
}

// Int64 returns a pointer to v, for the optional numeric fields.
func Int64(v int64) *int64 { return &v }
