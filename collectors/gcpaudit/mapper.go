package gcpaudit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/event"
)

// Type is the collector type.
const Type = "gcpaudit"

// methods maps IAM admin methods (the part after the last '.') to actions.
var methods = map[string]event.Action{
	"CreateServiceAccount":     event.UserCreate,
	"DeleteServiceAccount":     event.UserDelete,
	"DisableServiceAccount":    event.UserDisable,
	"EnableServiceAccount":     event.UserEnable,
	"UndeleteServiceAccount":   event.UserEnable,
	"PatchServiceAccount":      event.UserModify,
	"UpdateServiceAccount":     event.UserModify,
	"CreateServiceAccountKey":  event.CredentialCreate,
	"UploadServiceAccountKey":  event.CredentialCreate,
	"EnableServiceAccountKey":  event.CredentialCreate,
	"DeleteServiceAccountKey":  event.CredentialDelete,
	"DisableServiceAccountKey": event.CredentialDelete,
}

// logEntry is the part of a LogEntry with an AuditLog payload the mapping
// reads.
type logEntry struct {
	InsertID  string `json:"insertId"`
	LogName   string `json:"logName"`
	Timestamp string `json:"timestamp"`
	Resource  struct {
		Type   string            `json:"type"`
		Labels map[string]string `json:"labels"`
	} `json:"resource"`
	ProtoPayload *struct {
		ServiceName        string `json:"serviceName"`
		MethodName         string `json:"methodName"`
		ResourceName       string `json:"resourceName"`
		AuthenticationInfo struct {
			PrincipalEmail               string `json:"principalEmail"`
			PrincipalSubject             string `json:"principalSubject"`
			ServiceAccountDelegationInfo []struct {
				PrincipalSubject    string `json:"principalSubject"`
				FirstPartyPrincipal *struct {
					PrincipalEmail string `json:"principalEmail"`
				} `json:"firstPartyPrincipal"`
			} `json:"serviceAccountDelegationInfo"`
		} `json:"authenticationInfo"`
		RequestMetadata struct {
			CallerIP                string `json:"callerIp"`
			CallerSuppliedUserAgent string `json:"callerSuppliedUserAgent"`
		} `json:"requestMetadata"`
		Status *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
		Request     map[string]any `json:"request"`
		Response    map[string]any `json:"response"`
		ServiceData *struct {
			PolicyDelta *policyDelta `json:"policyDelta"`
		} `json:"serviceData"`
		Metadata *struct {
			DatasetChange *policyDelta `json:"datasetChange"`
		} `json:"metadata"`
	} `json:"protoPayload"`
}

type policyDelta struct {
	BindingDeltas []struct {
		Action    string `json:"action"`
		Role      string `json:"role"`
		Member    string `json:"member"`
		Condition *struct {
			Title string `json:"title"`
		} `json:"condition"`
	} `json:"bindingDeltas"`
}

type mapper struct {
	instance string
	now      func() time.Time
}

// Map maps one LogEntry to zero or more events (one per binding delta of
// a SetIamPolicy).
func (m *mapper) Map(rec []byte) ([]event.Event, bool, error) {
	var e logEntry
	if err := json.Unmarshal(rec, &e); err != nil {
		return nil, false, fmt.Errorf("not a LogEntry: %w", err)
	}
	p := e.ProtoPayload
	if p == nil {
		return nil, false, nil // not an audit log entry
	}
	if p.MethodName == "" {
		return nil, false, errors.New("audit entry has no methodName")
	}
	short := p.MethodName[strings.LastIndex(p.MethodName, ".")+1:]
	lower := strings.ToLower(short)
	setPolicy := lower == "setiampolicy" || lower == "setiampermissions"
	action, known := methods[short]
	if !known && !setPolicy {
		return nil, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return nil, false, fmt.Errorf("%s: timestamp %q: %w", p.MethodName, e.Timestamp, err)
	}
	if e.InsertID == "" {
		return nil, false, fmt.Errorf("%s: entry has no insertId", p.MethodName)
	}
	base := event.Event{
		Time:         t,
		ObservedTime: m.now(),
		Outcome:      event.OutcomeSuccess,
		Origin: event.Origin{System: "gcp", Instance: parent(e.LogName), IP: p.RequestMetadata.CallerIP,
			UserAgent: p.RequestMetadata.CallerSuppliedUserAgent, Program: p.ServiceName},
		Source: event.Source{Collector: Type, Instance: m.instance, EventID: e.InsertID},
		Raw:    cloudjson.RedactRaw(rec),
	}
	ai := p.AuthenticationInfo
	base.Actor = event.Actor{Name: firstOf(ai.PrincipalEmail, ai.PrincipalSubject), ID: ai.PrincipalSubject, Type: principalType(ai.PrincipalEmail)}
	for _, d := range ai.ServiceAccountDelegationInfo {
		if d.FirstPartyPrincipal != nil && d.FirstPartyPrincipal.PrincipalEmail != "" {
			base.Actor.OnBehalfOf = d.FirstPartyPrincipal.PrincipalEmail
			base.Actor.Auth = "impersonation"
		}
	}
	if s := p.Status; s != nil && s.Code != 0 {
		base.Outcome = event.OutcomeFailure
		base.Changes = append(base.Changes, event.Change{Field: "status", New: strconv.Itoa(s.Code) + " " + s.Message})
	}
	var evs []event.Event
	if setPolicy {
		var deltas *policyDelta
		if p.ServiceData != nil && p.ServiceData.PolicyDelta != nil && len(p.ServiceData.PolicyDelta.BindingDeltas) > 0 {
			deltas = p.ServiceData.PolicyDelta
		} else if p.Metadata != nil && p.Metadata.DatasetChange != nil {
			deltas = p.Metadata.DatasetChange
		}
		resource := firstOf(p.ResourceName, e.Resource.Type)
		if deltas == nil || len(deltas.BindingDeltas) == 0 {
			// A failed call, or a policy write that logged no delta.
			ev := base
			ev.Action = event.PrivilegeGrant
			ev.Target.Privileges = []string{"iam-policy on " + resource}
			ev.ID = event.NewID(Type, e.LogName, e.InsertID)
			evs = append(evs, ev)
		}
		if deltas != nil {
			for i, d := range deltas.BindingDeltas {
				ev := base
				ev.Changes = append([]event.Change(nil), base.Changes...)
				switch strings.ToUpper(d.Action) {
				case "ADD":
					ev.Action = event.PrivilegeGrant
				case "REMOVE":
					ev.Action = event.PrivilegeRevoke
				default:
					continue
				}
				priv := d.Role + " on " + resource
				if d.Condition != nil && d.Condition.Title != "" {
					priv += " if " + d.Condition.Title
				}
				ev.Target.Privileges = []string{priv}
				member(&ev.Target, d.Member)
				ev.ID = event.NewID(Type, e.LogName, e.InsertID+"#"+strconv.Itoa(i))
				evs = append(evs, ev)
			}
		}
	} else {
		ev := base
		ev.Action = action
		ev.ID = event.NewID(Type, e.LogName, e.InsertID)
		sa := serviceAccount(p.ResourceName, p.Request, p.Response, e.Resource.Labels)
		ev.Target.User = &event.User{Name: sa, Email: cloudjson.Email(sa)}
		if key, _ := p.Response["name"].(string); strings.Contains(key, "/keys/") {
			ev.Changes = append(ev.Changes, event.Change{Field: "key", New: key[strings.LastIndex(key, "/")+1:]})
		}
		evs = append(evs, ev)
	}
	out := evs[:0]
	var errs []error
	for i := range evs {
		evs[i].Complete()
		if err := event.Validate(&evs[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", p.MethodName, e.InsertID, err))
			continue
		}
		out = append(out, evs[i])
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	return out, len(out) > 0, nil
}

// member fills the target from an IAM member ("user:x", "group:x",
// "serviceAccount:x", "domain:x", "allUsers", "principal://...").
func member(t *event.Target, m string) {
	kind, id, ok := strings.Cut(m, ":")
	if !ok {
		t.User = &event.User{Name: m}
		return
	}
	switch kind {
	case "group":
		t.Group = &event.Group{Name: id}
	case "user", "serviceAccount":
		t.User = &event.User{Name: id, Email: cloudjson.Email(id)}
	case "deleted":
		// deleted:user:x?uid=...
		t.User = &event.User{Name: m}
	default:
		t.User = &event.User{Name: m}
	}
}

// serviceAccount names the service account an IAM admin call acted on.
func serviceAccount(resourceName string, req, resp map[string]any, labels map[string]string) string {
	if s, _ := resp["email"].(string); s != "" {
		return s
	}
	name := resourceName
	if n, _ := req["name"].(string); n != "" {
		name = n
	}
	if i := strings.Index(name, "/serviceAccounts/"); i >= 0 {
		sa := name[i+len("/serviceAccounts/"):]
		if j := strings.Index(sa, "/"); j >= 0 {
			sa = sa[:j]
		}
		return sa
	}
	if s := labels["email_id"]; s != "" {
		return s
	}
	return firstOf(name, "service account")
}

// parent returns "projects/P" or "organizations/O" from a logName.
func parent(logName string) string {
	if i := strings.Index(logName, "/logs/"); i >= 0 {
		return logName[:i]
	}
	return logName
}

func principalType(email string) event.ActorType {
	switch {
	case strings.HasSuffix(email, "gserviceaccount.com"):
		return event.ActorService
	case email != "":
		return event.ActorHuman
	}
	return event.ActorUnknown
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
