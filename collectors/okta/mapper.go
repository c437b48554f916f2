package okta

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
const Type = "okta"

// actions maps the System Log event types that change who has access.
var actions = map[string]event.Action{
	"user.lifecycle.create":              event.UserCreate,
	"user.lifecycle.activate":            event.UserEnable,
	"user.lifecycle.reactivate":          event.UserEnable,
	"user.lifecycle.unsuspend":           event.UserEnable,
	"user.lifecycle.deactivate":          event.UserDisable,
	"user.lifecycle.suspend":             event.UserDisable,
	"user.lifecycle.delete.completed":    event.UserDelete,
	"user.account.lock":                  event.UserLock,
	"user.account.unlock":                event.UserUnlock,
	"user.account.unlock_by_admin":       event.UserUnlock,
	"user.account.update_profile":        event.UserModify,
	"user.account.reset_password":        event.PasswordReset,
	"user.account.update_password":       event.PasswordChange,
	"user.mfa.factor.activate":           event.MFAEnable,
	"user.mfa.factor.deactivate":         event.MFADisable,
	"user.mfa.factor.reset_all":          event.MFADisable,
	"group.lifecycle.create":             event.GroupCreate,
	"group.lifecycle.delete":             event.GroupDelete,
	"group.user_membership.add":          event.GroupMemberAdd,
	"group.user_membership.remove":       event.GroupMemberRemove,
	"application.user_membership.add":    event.PrivilegeGrant,
	"application.user_membership.remove": event.PrivilegeRevoke,
	"user.account.privilege.grant":       event.PrivilegeGrant,
	"user.account.privilege.revoke":      event.PrivilegeRevoke,
	"group.privilege.grant":              event.PrivilegeGrant,
	"group.privilege.revoke":             event.PrivilegeRevoke,
	"system.api_token.create":            event.CredentialCreate,
	"system.api_token.revoke":            event.CredentialDelete,
}

// logEvent is the part of an Okta LogEvent the mapping reads.
type logEvent struct {
	UUID           string   `json:"uuid"`
	Published      string   `json:"published"`
	EventType      string   `json:"eventType"`
	DisplayMessage string   `json:"displayMessage"`
	Actor          *entity  `json:"actor"`
	Target         []entity `json:"target"`
	Client         *struct {
		IPAddress string `json:"ipAddress"`
		UserAgent *struct {
			RawUserAgent string `json:"rawUserAgent"`
		} `json:"userAgent"`
	} `json:"client"`
	Outcome *struct {
		Result string `json:"result"`
		Reason string `json:"reason"`
	} `json:"outcome"`
	DebugContext *struct {
		DebugData map[string]any `json:"debugData"`
	} `json:"debugContext"`
	AuthenticationContext *struct {
		ExternalSessionID string `json:"externalSessionId"`
		CredentialType    string `json:"credentialType"`
	} `json:"authenticationContext"`
}

type entity struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AlternateID string `json:"alternateId"`
	DisplayName string `json:"displayName"`
}

// errNoID marks a record without the uuid every event must carry.
var errNoID = errors.New("event has no uuid")

// mapper turns LogEvents into schema events.
type mapper struct {
	instance string // collector instance name
	org      string // org host, for Origin.Instance ("" in parse mode)
	now      func() time.Time
}

// Map returns the provisioning event rec describes, or ok=false when rec
// is valid but not a provisioning event. Errors describe malformed records.
func (m *mapper) Map(rec []byte) (ev event.Event, ok bool, err error) {
	var le logEvent
	if err := json.Unmarshal(rec, &le); err != nil {
		return ev, false, fmt.Errorf("not an Okta LogEvent: %w", err)
	}
	action, known := actions[le.EventType]
	if !known {
		if le.EventType == "" {
			return ev, false, errors.New("LogEvent has no eventType")
		}
		return ev, false, nil
	}
	if le.UUID == "" {
		return ev, false, errNoID
	}
	t, err := time.Parse(time.RFC3339Nano, le.Published)
	if err != nil {
		return ev, false, fmt.Errorf("published %q: %w", le.Published, err)
	}
	ev = event.Event{
		ID:           event.NewID(Type, "", le.UUID),
		Time:         t,
		ObservedTime: m.now(),
		Action:       action,
		Origin:       event.Origin{System: "okta", Instance: m.org},
		Source:       event.Source{Collector: Type, Instance: m.instance, EventID: le.UUID},
		Raw:          cloudjson.Raw(rec),
	}
	if a := le.Actor; a != nil {
		ev.Actor = event.Actor{Name: a.AlternateID, ID: a.ID, Type: actorType(a.Type)}
		if ev.Actor.Name == "" || ev.Actor.Name == "unknown" {
			ev.Actor.Name = a.DisplayName
		}
	}
	if ac := le.AuthenticationContext; ac != nil {
		ev.Actor.Session = ac.ExternalSessionID
		ev.Actor.Auth = strings.ToLower(ac.CredentialType)
	}
	if c := le.Client; c != nil {
		if c.IPAddress != "null" {
			ev.Origin.IP = c.IPAddress
		}
		if c.UserAgent != nil && c.UserAgent.RawUserAgent != "UNKNOWN" {
			ev.Origin.UserAgent = c.UserAgent.RawUserAgent
		}
	}
	ev.Outcome = event.OutcomeUnknown
	if o := le.Outcome; o != nil {
		switch strings.ToUpper(o.Result) {
		case "SUCCESS", "ALLOW":
			ev.Outcome = event.OutcomeSuccess
		case "FAILURE", "DENY":
			ev.Outcome = event.OutcomeFailure
		}
	}
	var app *entity
	for i := range le.Target {
		tg := &le.Target[i]
		switch tg.Type {
		case "User":
			if ev.Target.User == nil {
				ev.Target.User = &event.User{Name: tg.AlternateID, ID: tg.ID, Email: cloudjson.Email(tg.AlternateID)}
			}
		case "UserGroup":
			if ev.Target.Group == nil {
				ev.Target.Group = &event.Group{Name: tg.DisplayName, ID: tg.ID}
			}
		case "AppInstance":
			if app == nil {
				app = tg
			}
		case "Token":
			ev.Changes = append(ev.Changes, event.Change{Field: "api_token", New: tg.DisplayName})
		}
	}
	switch le.EventType {
	case "application.user_membership.add", "application.user_membership.remove":
		if app != nil {
			ev.Target.Privileges = []string{"app:" + firstOf(app.DisplayName, app.AlternateID, app.ID)}
		}
	case "user.account.privilege.grant", "group.privilege.grant":
		ev.Target.Privileges = splitRoles(le.debug("privilegeGranted"))
	case "user.account.privilege.revoke", "group.privilege.revoke":
		ev.Target.Privileges = splitRoles(le.debug("privilegeRevoked"))
	case "system.api_token.create", "system.api_token.revoke":
		// An API token belongs to the admin who created it.
		if ev.Target.User == nil && le.Actor != nil {
			ev.Target.User = &event.User{Name: le.Actor.AlternateID, ID: le.Actor.ID, Email: cloudjson.Email(le.Actor.AlternateID)}
		}
	}
	if action == event.PrivilegeGrant || action == event.PrivilegeRevoke {
		if len(ev.Target.Privileges) == 0 {
			ev.Target.Privileges = []string{"okta:" + le.EventType}
		}
	}
	if o := le.Outcome; o != nil && o.Reason != "" {
		ev.Changes = append(ev.Changes, event.Change{Field: "outcome_reason", New: o.Reason})
	}
	ev.Complete()
	if err := event.Validate(&ev); err != nil {
		return ev, false, fmt.Errorf("%s %s: %w", le.EventType, le.UUID, err)
	}
	return ev, true, nil
}

func (le *logEvent) debug(key string) string {
	if le.DebugContext == nil {
		return ""
	}
	s, _ := le.DebugContext.DebugData[key].(string)
	return s
}

func splitRoles(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func actorType(t string) event.ActorType {
	switch t {
	case "User":
		return event.ActorHuman
	case "SystemPrincipal":
		return event.ActorSystem
	case "":
		return event.ActorUnknown
	}
	return event.ActorService
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
