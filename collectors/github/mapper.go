package github

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/event"
)

// Type is the collector type.
const Type = "github"

var actions = map[string]event.Action{
	"org.add_member":                            event.GroupMemberAdd,
	"org.remove_member":                         event.GroupMemberRemove,
	"org.update_member":                         event.PrivilegeGrant, // refined by the permissions
	"org.add_billing_manager":                   event.PrivilegeGrant,
	"org.remove_billing_manager":                event.PrivilegeRevoke,
	"org.block_user":                            event.UserLock,
	"org.unblock_user":                          event.UserUnlock,
	"team.add_member":                           event.GroupMemberAdd,
	"team.remove_member":                        event.GroupMemberRemove,
	"team.promote_maintainer":                   event.PrivilegeGrant,
	"team.demote_maintainer":                    event.PrivilegeRevoke,
	"team.create":                               event.GroupCreate,
	"team.destroy":                              event.GroupDelete,
	"repo.add_member":                           event.PrivilegeGrant,
	"repo.update_member":                        event.PrivilegeGrant,
	"repo.remove_member":                        event.PrivilegeRevoke,
	"org.add_outside_collaborator":              event.PrivilegeGrant,
	"personal_access_token.access_granted":      event.CredentialCreate,
	"personal_access_token.access_revoked":      event.CredentialDelete,
	"org_credential_authorization.grant":        event.CredentialCreate,
	"org_credential_authorization.revoke":       event.CredentialDelete,
	"org_credential_authorization.deauthorized": event.CredentialDelete,
}

// entry is the part of an audit-log entry the mapping reads.
type entry struct {
	Timestamp     *json.Number `json:"@timestamp"`
	CreatedAt     *json.Number `json:"created_at"`
	DocumentID    string       `json:"_document_id"`
	Action        string       `json:"action"`
	Actor         string       `json:"actor"`
	ActorID       *json.Number `json:"actor_id"`
	ActorIP       string       `json:"actor_ip"`
	UserAgent     string       `json:"user_agent"`
	User          string       `json:"user"`
	UserID        *json.Number `json:"user_id"`
	Org           string       `json:"org"`
	Team          string       `json:"team"`
	Repo          string       `json:"repo"`
	Permission    string       `json:"permission"`
	OldPermission string       `json:"old_permission"`
}

type mapper struct {
	instance string
	now      func() time.Time
}

// Map maps one audit-log entry.
func (m *mapper) Map(rec []byte) (event.Event, bool, error) {
	var e entry
	if err := json.Unmarshal(rec, &e); err != nil {
		return event.Event{}, false, fmt.Errorf("not a GitHub audit-log entry: %w", err)
	}
	if e.Action == "" {
		return event.Event{}, false, errors.New("audit-log entry has no action")
	}
	action, ok := actions[e.Action]
	if !ok {
		return event.Event{}, false, nil
	}
	if e.DocumentID == "" {
		return event.Event{}, false, errors.New("audit-log entry has no _document_id")
	}
	ts := e.Timestamp
	if ts == nil {
		ts = e.CreatedAt
	}
	if ts == nil {
		return event.Event{}, false, errors.New("audit-log entry has no @timestamp")
	}
	ms, err := ts.Int64()
	if err != nil || ms <= 0 || ms > 1<<52 {
		return event.Event{}, false, fmt.Errorf("@timestamp %q is not epoch milliseconds", ts.String())
	}
	ev := event.Event{
		ID:           event.NewID(Type, e.Org, e.DocumentID),
		Time:         time.UnixMilli(ms),
		ObservedTime: m.now(),
		Action:       action,
		Outcome:      event.OutcomeSuccess, // the audit log records completed operations
		Actor:        event.Actor{Name: e.Actor, ID: num(e.ActorID), Type: event.ActorHuman},
		Origin:       event.Origin{System: "github", Instance: e.Org, IP: e.ActorIP, UserAgent: e.UserAgent},
		Source:       event.Source{Collector: Type, Instance: m.instance, EventID: e.DocumentID},
		Raw:          cloudjson.RedactRaw(rec),
	}
	if strings.HasSuffix(e.Actor, "[bot]") {
		ev.Actor.Type = event.ActorService
	}
	if e.User != "" || e.UserID != nil {
		ev.Target.User = &event.User{Name: e.User, ID: num(e.UserID)}
	}
	kind, _, _ := strings.Cut(e.Action, ".")
	switch {
	case kind == "team" || e.Team != "":
		if e.Team != "" {
			ev.Target.Group = &event.Group{Name: e.Team}
		}
	case kind == "org" && (action == event.GroupMemberAdd || action == event.GroupMemberRemove):
		ev.Target.Group = &event.Group{Name: e.Org}
	}
	switch e.Action {
	case "org.update_member":
		switch {
		case e.Permission == "admin":
			ev.Target.Privileges = []string{"org:" + e.Org + ":admin"}
		case e.OldPermission == "admin":
			ev.Action = event.PrivilegeRevoke
			ev.Target.Privileges = []string{"org:" + e.Org + ":admin"}
		default:
			ev.Target.Privileges = []string{"org:" + e.Org + ":" + firstOf(e.Permission, "member")}
		}
	case "org.add_billing_manager", "org.remove_billing_manager":
		ev.Target.Privileges = []string{"org:" + e.Org + ":billing_manager"}
	case "team.promote_maintainer", "team.demote_maintainer":
		ev.Target.Privileges = []string{"team:" + e.Team + ":maintainer"}
	case "repo.add_member", "repo.update_member", "repo.remove_member", "org.add_outside_collaborator":
		ev.Target.Privileges = []string{"repo:" + firstOf(e.Repo, e.Org) + ":" + firstOf(e.Permission, "collaborator")}
	case "team.create", "team.destroy":
		ev.Target.User = nil
	}
	if e.OldPermission != "" || e.Permission != "" {
		ev.Changes = append(ev.Changes, event.Change{Field: "permission", Old: e.OldPermission, New: e.Permission})
	}
	if (action == event.CredentialCreate || action == event.CredentialDelete) && ev.Target.User == nil {
		ev.Target.User = &event.User{Name: e.Actor, ID: num(e.ActorID)}
	}
	ev.Complete()
	if err := event.Validate(&ev); err != nil {
		return ev, false, fmt.Errorf("%s %s: %w", e.Action, e.DocumentID, err)
	}
	return ev, true, nil
}

func num(n *json.Number) string {
	if n == nil {
		return ""
	}
	return n.String()
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
