package entra

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
const Type = "entra"

// graphActions maps directory audit activityDisplayName values (the Entra
// audit activity reference) to actions. "Update user" is refined by its
// AccountEnabled change.
var graphActions = map[string]event.Action{
	"add user":                    event.UserCreate,
	"invite external user":        event.UserCreate,
	"delete user":                 event.UserDelete,
	"hard delete user":            event.UserDelete,
	"restore user":                event.UserEnable,
	"update user":                 event.UserModify,
	"disable account":             event.UserDisable,
	"enable account":              event.UserEnable,
	"add member to group":         event.GroupMemberAdd,
	"remove member from group":    event.GroupMemberRemove,
	"add group":                   event.GroupCreate,
	"delete group":                event.GroupDelete,
	"add owner to group":          event.PrivilegeGrant,
	"remove owner from group":     event.PrivilegeRevoke,
	"add member to role":          event.PrivilegeGrant,
	"add eligible member to role": event.PrivilegeGrant,
	"add scoped member to role":   event.PrivilegeGrant,
	"add member to role completed (pim activation)": event.PrivilegeGrant,
	"remove member from role":                       event.PrivilegeRevoke,
	"remove eligible member from role":              event.PrivilegeRevoke,
	"remove scoped member from role":                event.PrivilegeRevoke,
	"add app role assignment to service principal":  event.PrivilegeGrant,
	"add app role assignment grant to user":         event.PrivilegeGrant,
	"remove app role assignment from user":          event.PrivilegeRevoke,
	"reset password":                                event.PasswordReset,
	"reset user password":                           event.PasswordReset,
	"reset password (by admin)":                     event.PasswordReset,
	"reset password (self-service)":                 event.PasswordReset,
	"change user password":                          event.PasswordChange,
	"change password (self-service)":                event.PasswordChange,
	"disable strong authentication":                 event.MFADisable,
	"user deleted security info":                    event.MFADisable,
	"admin deleted security info":                   event.MFADisable,
	"user registered security info":                 event.MFAEnable,
	"admin registered security info":                event.MFAEnable,
	"add service principal credentials":             event.CredentialCreate,
	"remove service principal credentials":          event.CredentialDelete,
}

// directoryAudit is the part of a Graph directoryAudit the mapping reads.
// encoding/json matches names case-insensitively, which the Graph docs'
// "Type" spelling needs.
type directoryAudit struct {
	ID                  string     `json:"id"`
	Category            string     `json:"category"`
	CorrelationID       string     `json:"correlationId"`
	Result              string     `json:"result"`
	ResultReason        string     `json:"resultReason"`
	ActivityDisplayName string     `json:"activityDisplayName"`
	ActivityDateTime    string     `json:"activityDateTime"`
	LoggedByService     string     `json:"loggedByService"`
	InitiatedBy         *initiator `json:"initiatedBy"`
	TargetResources     []struct {
		ID                 string `json:"id"`
		DisplayName        string `json:"displayName"`
		Type               string `json:"type"`
		UserPrincipalName  string `json:"userPrincipalName"`
		ModifiedProperties []struct {
			DisplayName string `json:"displayName"`
			OldValue    any    `json:"oldValue"`
			NewValue    any    `json:"newValue"`
		} `json:"modifiedProperties"`
	} `json:"targetResources"`
	AdditionalDetails []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"additionalDetails"`
}

type initiator struct {
	User *struct {
		ID                string `json:"id"`
		DisplayName       string `json:"displayName"`
		UserPrincipalName string `json:"userPrincipalName"`
		IPAddress         string `json:"ipAddress"`
	} `json:"user"`
	App *struct {
		AppID              string `json:"appId"`
		DisplayName        string `json:"displayName"`
		ServicePrincipalID string `json:"servicePrincipalId"`
	} `json:"app"`
}

// activity is the part of an Azure Activity Log record the mapping reads.
type activity struct {
	Caller         string            `json:"caller"`
	Claims         map[string]string `json:"claims"`
	CorrelationID  string            `json:"correlationId"`
	EventDataID    string            `json:"eventDataId"`
	EventName      valueField        `json:"eventName"`
	EventTimestamp string            `json:"eventTimestamp"`
	OperationName  valueField        `json:"operationName"`
	ResourceID     string            `json:"resourceId"`
	Status         valueField        `json:"status"`
	SubscriptionID string            `json:"subscriptionId"`
	HTTPRequest    *struct {
		ClientIPAddress string `json:"clientIpAddress"`
	} `json:"httpRequest"`
	Properties map[string]any `json:"properties"`
}

type valueField struct {
	Value string `json:"value"`
}

const (
	roleAssignmentWrite  = "microsoft.authorization/roleassignments/write"
	roleAssignmentDelete = "microsoft.authorization/roleassignments/delete"
)

type mapper struct {
	instance string
	tenant   string
	now      func() time.Time
}

var errNoID = errors.New("record has no id")

// Map maps a directoryAudit or an Activity Log record. ok=false: a valid
// record that is not a provisioning event.
func (m *mapper) Map(rec []byte) ([]event.Event, bool, error) {
	var probe struct {
		Activity  *string `json:"activityDisplayName"`
		EventData *string `json:"eventDataId"`
	}
	if err := json.Unmarshal(rec, &probe); err != nil {
		return nil, false, fmt.Errorf("not a JSON object: %w", err)
	}
	switch {
	case probe.Activity != nil:
		ev, ok, err := m.mapGraph(rec)
		if !ok || err != nil {
			return nil, ok, err
		}
		return []event.Event{ev}, true, nil
	case probe.EventData != nil:
		ev, ok, err := m.mapActivity(rec)
		if !ok || err != nil {
			return nil, ok, err
		}
		return []event.Event{ev}, true, nil
	}
	return nil, false, errors.New("neither a Graph directoryAudit nor an Azure Activity Log record")
}

func (m *mapper) mapGraph(rec []byte) (event.Event, bool, error) {
	var a directoryAudit
	if err := json.Unmarshal(rec, &a); err != nil {
		return event.Event{}, false, fmt.Errorf("not a directoryAudit: %w", err)
	}
	action, known := graphActions[strings.ToLower(strings.TrimSpace(a.ActivityDisplayName))]
	if !known {
		return event.Event{}, false, nil
	}
	if a.ID == "" {
		return event.Event{}, false, errNoID
	}
	t, err := time.Parse(time.RFC3339Nano, a.ActivityDateTime)
	if err != nil {
		return event.Event{}, false, fmt.Errorf("activityDateTime %q: %w", a.ActivityDateTime, err)
	}
	ev := event.Event{
		ID:           event.NewID(Type, "", a.ID),
		Time:         t,
		ObservedTime: m.now(),
		Action:       action,
		Outcome:      outcome(a.Result),
		Origin:       event.Origin{System: "entra", Instance: m.tenant},
		Source:       event.Source{Collector: Type, Instance: m.instance, EventID: a.ID},
		Raw:          cloudjson.Raw(rec),
	}
	if ib := a.InitiatedBy; ib != nil {
		switch {
		case ib.User != nil && (ib.User.UserPrincipalName != "" || ib.User.ID != ""):
			ev.Actor = event.Actor{Name: firstOf(ib.User.UserPrincipalName, ib.User.DisplayName), ID: ib.User.ID, Type: event.ActorHuman}
			ev.Origin.IP = ib.User.IPAddress
		case ib.App != nil:
			ev.Actor = event.Actor{Name: firstOf(ib.App.DisplayName, ib.App.AppID), ID: firstOf(ib.App.ServicePrincipalID, ib.App.AppID), Type: event.ActorService}
		}
	}
	for _, d := range a.AdditionalDetails {
		if strings.EqualFold(d.Key, "User-Agent") {
			ev.Origin.UserAgent = d.Value
		}
	}
	var roles []string
	for _, tr := range a.TargetResources {
		switch strings.ToLower(tr.Type) {
		case "user":
			if ev.Target.User == nil {
				name := firstOf(tr.UserPrincipalName, tr.DisplayName)
				ev.Target.User = &event.User{Name: name, ID: tr.ID, Email: cloudjson.Email(tr.UserPrincipalName)}
			}
		case "group":
			if ev.Target.Group == nil {
				ev.Target.Group = &event.Group{Name: tr.DisplayName, ID: tr.ID}
			}
		case "role", "directoryrole":
			roles = append(roles, firstOf(tr.DisplayName, tr.ID))
		case "serviceprincipal", "application":
			if ev.Target.User == nil && (action == event.CredentialCreate || action == event.CredentialDelete ||
				action == event.PrivilegeGrant || action == event.PrivilegeRevoke) {
				ev.Target.User = &event.User{Name: tr.DisplayName, ID: tr.ID}
			}
		}
		for _, mp := range tr.ModifiedProperties {
			oldV, newV := propValue(mp.OldValue), propValue(mp.NewValue)
			switch mp.DisplayName {
			case "Role.DisplayName", "AppRole.Value", "AppRole.DisplayName":
				if v := firstOf(newV, oldV); v != "" {
					roles = append(roles, v)
				}
			case "AccountEnabled":
				if action == event.UserModify {
					switch {
					case oldV == "true" && newV == "false":
						ev.Action = event.UserDisable
					case oldV == "false" && newV == "true":
						ev.Action = event.UserEnable
					}
				}
			}
			if mp.DisplayName != "" && len(ev.Changes) < 20 {
				ev.Changes = append(ev.Changes, event.Change{Field: mp.DisplayName, Old: cut(oldV), New: cut(newV)})
			}
		}
	}
	switch action {
	case event.PrivilegeGrant, event.PrivilegeRevoke:
		if strings.Contains(strings.ToLower(a.ActivityDisplayName), "owner to group") ||
			strings.Contains(strings.ToLower(a.ActivityDisplayName), "owner from group") {
			roles = append(roles, "group owner")
		}
		if len(roles) == 0 {
			roles = []string{a.ActivityDisplayName}
		}
		ev.Target.Privileges = dedupe(roles)
	}
	if a.ResultReason != "" && ev.Outcome == event.OutcomeFailure {
		ev.Changes = append(ev.Changes, event.Change{Field: "result_reason", New: cut(a.ResultReason)})
	}
	ev.Complete()
	if err := event.Validate(&ev); err != nil {
		return ev, false, fmt.Errorf("%s %s: %w", a.ActivityDisplayName, a.ID, err)
	}
	return ev, true, nil
}

func (m *mapper) mapActivity(rec []byte) (event.Event, bool, error) {
	var a activity
	if err := json.Unmarshal(rec, &a); err != nil {
		return event.Event{}, false, fmt.Errorf("not an Activity Log record: %w", err)
	}
	op := strings.ToLower(a.OperationName.Value)
	var action event.Action
	switch op {
	case roleAssignmentWrite:
		action = event.PrivilegeGrant
	case roleAssignmentDelete:
		action = event.PrivilegeRevoke
	default:
		return event.Event{}, false, nil
	}
	// Administrative writes log BeginRequest (Started) and EndRequest
	// (Succeeded/Failed): only the end says what happened.
	status := strings.ToLower(a.Status.Value)
	if strings.EqualFold(a.EventName.Value, "BeginRequest") || status == "started" || status == "accepted" {
		return event.Event{}, false, nil
	}
	if a.EventDataID == "" {
		return event.Event{}, false, errNoID
	}
	t, err := time.Parse(time.RFC3339Nano, a.EventTimestamp)
	if err != nil {
		return event.Event{}, false, fmt.Errorf("eventTimestamp %q: %w", a.EventTimestamp, err)
	}
	ev := event.Event{
		ID:           event.NewID(Type, a.SubscriptionID, a.EventDataID),
		Time:         t,
		ObservedTime: m.now(),
		Action:       action,
		Outcome:      event.OutcomeUnknown,
		Actor:        event.Actor{Name: a.Caller, ID: a.Claims["http://schemas.microsoft.com/identity/claims/objectidentifier"]},
		Origin:       event.Origin{System: "azure", Instance: a.SubscriptionID, IP: a.Claims["ipaddr"]},
		Source:       event.Source{Collector: Type, Instance: m.instance, EventID: a.EventDataID},
		Raw:          cloudjson.Raw(rec),
	}
	switch status {
	case "succeeded":
		ev.Outcome = event.OutcomeSuccess
	case "failed":
		ev.Outcome = event.OutcomeFailure
	}
	switch {
	case cloudjson.Email(a.Caller) != "":
		ev.Actor.Type = event.ActorHuman
	case a.Caller != "":
		ev.Actor.Type = event.ActorService
	}
	if a.HTTPRequest != nil && a.HTTPRequest.ClientIPAddress != "" {
		ev.Origin.IP = a.HTTPRequest.ClientIPAddress
	}
	// The assignment's principal, role and scope are in the request body
	// ARM logged (a JSON string).
	var body struct {
		Properties struct {
			PrincipalID      string `json:"PrincipalId"`
			PrincipalType    string `json:"PrincipalType"`
			RoleDefinitionID string `json:"RoleDefinitionId"`
			Scope            string `json:"Scope"`
		} `json:"Properties"`
	}
	if s, ok := a.Properties["requestbody"].(string); ok && s != "" {
		_ = json.Unmarshal([]byte(s), &body)
	}
	p := body.Properties
	switch strings.ToLower(p.PrincipalType) {
	case "group":
		ev.Target.Group = &event.Group{ID: p.PrincipalID}
	default:
		if p.PrincipalID != "" {
			ev.Target.User = &event.User{ID: p.PrincipalID}
		}
	}
	switch {
	case p.RoleDefinitionID != "":
		priv := "azure-rbac:" + p.RoleDefinitionID
		if p.Scope != "" {
			priv += " at " + p.Scope
		}
		ev.Target.Privileges = []string{priv}
	default:
		ev.Target.Privileges = []string{"azure-rbac:" + a.ResourceID}
	}
	ev.Complete()
	if err := event.Validate(&ev); err != nil {
		return ev, false, fmt.Errorf("activity %s: %w", a.EventDataID, err)
	}
	return ev, true, nil
}

func outcome(r string) event.Outcome {
	switch strings.ToLower(r) {
	case "success":
		return event.OutcomeSuccess
	case "failure", "timeout":
		return event.OutcomeFailure
	}
	return event.OutcomeUnknown
}

// propValue unwraps Graph's JSON-encoded modifiedProperties values:
// "[true]" -> "true", "\"Global Administrator\"" -> "Global Administrator".
func propValue(v any) string {
	s, ok := v.(string)
	if !ok {
		if v == nil {
			return ""
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	var decoded any
	if err := json.Unmarshal([]byte(s), &decoded); err != nil {
		return s
	}
	switch d := decoded.(type) {
	case string:
		return d
	case []any:
		parts := make([]string, 0, len(d))
		for _, x := range d {
			parts = append(parts, fmt.Sprint(x))
		}
		return strings.Join(parts, ",")
	case nil:
		return ""
	}
	return fmt.Sprint(decoded)
}

func cut(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
