package event

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// FieldError is one way an event breaks the schema.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Validate reports every way e breaks schema v1, joined into one error, or
// nil when e is valid.
func Validate(e *Event) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if e.ID == "" {
		bad("id", "is empty")
	} else if len(e.ID) > 128 {
		bad("id", "is longer than 128 bytes")
	}
	checkTime := func(field string, t time.Time) {
		switch {
		case t.IsZero():
			bad(field, "is not set")
		case t.Location() != time.UTC:
			bad(field, "is not UTC")
		}
	}
	checkTime("time", e.Time)
	checkTime("observed_time", e.ObservedTime)
	info, known := e.Action.Info()
	if !known {
		bad("action", "%q is not in the vocabulary", e.Action)
	}
	switch e.Outcome {
	case OutcomeSuccess, OutcomeFailure, OutcomeUnknown:
	default:
		bad("outcome", "%q is not success, failure or unknown", e.Outcome)
	}
	switch e.Severity {
	case SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical:
	default:
		bad("severity", "%q is not info, low, medium, high or critical", e.Severity)
	}
	switch e.Actor.Type {
	case "", ActorHuman, ActorService, ActorSystem, ActorUnknown:
	default:
		bad("actor.type", "%q is not human, service, system or unknown", e.Actor.Type)
	}
	if e.Target.User == nil && e.Target.Group == nil && len(e.Target.Privileges) == 0 {
		bad("target", "names no user, group or privilege")
	}
	if u := e.Target.User; u != nil && u.Name == "" && u.ID == "" && u.UID == nil && u.Email == "" {
		bad("target.user", "is present but empty")
	}
	if g := e.Target.Group; g != nil && g.Name == "" && g.ID == "" && g.GID == nil {
		bad("target.group", "is present but empty")
	}
	if known {
		switch info.OCSFClass {
		case OCSFClassGroupMgmt:
			if e.Target.Group == nil {
				bad("target.group", "is required for %s", e.Action)
			}
			if (e.Action == GroupMemberAdd || e.Action == GroupMemberRemove) && e.Target.User == nil {
				bad("target.user", "is required for %s", e.Action)
			}
		case OCSFClassUserAccess:
			if len(e.Target.Privileges) == 0 {
				bad("target.privileges", "is required for %s", e.Action)
			}
		case OCSFClassAccountChange:
			if e.Target.User == nil {
				bad("target.user", "is required for %s", e.Action)
			}
		}
		if want, _ := e.Action.OCSF(); e.OCSF != want {
			bad("ocsf", "is %+v, action %s maps to %+v", e.OCSF, e.Action, want)
		}
	}
	for i, c := range e.Changes {
		if c.Field == "" {
			bad(fmt.Sprintf("changes[%d].field", i), "is empty")
		}
	}
	if e.Source.Collector == "" {
		bad("source.collector", "is empty")
	}
	if e.Origin.PID < 0 {
		bad("origin.pid", "is negative")
	}
	if looksLikeSecret(e.Raw) {
		bad("raw", "holds what looks like a password hash; redact it")
	}
	for i, c := range e.Changes {
		if looksLikeSecret(c.Old) || looksLikeSecret(c.New) {
			bad(fmt.Sprintf("changes[%d]", i), "holds what looks like a password hash; redact it")
		}
	}
	return errors.Join(errs...)
}

// looksLikeSecret catches crypt(3) hashes ($id$...$...) and LDAP
// {SCHEME}hash values, the secrets most likely to slip through from account
// databases and changelogs.
func looksLikeSecret(s string) bool {
	if strings.IndexByte(s, '$') >= 0 {
		for _, p := range []string{"$y$", "$6$", "$5$", "$2b$", "$2y$", "$1$", "$7$", "$gy$", "$sha1$"} {
			if i := strings.Index(s, p); i >= 0 && strings.Count(s[i:], "$") >= 3 {
				return true
			}
		}
	}
	if strings.IndexByte(s, '{') < 0 {
		return false
	}
	upper := strings.ToUpper(s)
	for _, p := range []string{"{SSHA}", "{SSHA512}", "{SHA}", "{CRYPT}", "{PBKDF2", "{ARGON2}", "{SSHA256}"} {
		if strings.Contains(upper, p) {
			return true
		}
	}
	return false
}
