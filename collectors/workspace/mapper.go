package workspace

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
const Type = "workspace"

var actions = map[string]event.Action{
	"CREATE_USER":                      event.UserCreate,
	"DELETE_USER":                      event.UserDelete,
	"UNDELETE_USER":                    event.UserEnable,
	"SUSPEND_USER":                     event.UserDisable,
	"UNSUSPEND_USER":                   event.UserEnable,
	"ARCHIVE_USER":                     event.UserDisable,
	"UNARCHIVE_USER":                   event.UserEnable,
	"RENAME_USER":                      event.UserRename,
	"CHANGE_PASSWORD":                  event.PasswordReset,
	"CHANGE_PASSWORD_ON_NEXT_LOGIN":    event.UserModify,
	"MOVE_USER_TO_ORG_UNIT":            event.UserModify,
	"GRANT_ADMIN_PRIVILEGE":            event.PrivilegeGrant,
	"REVOKE_ADMIN_PRIVILEGE":           event.PrivilegeRevoke,
	"GRANT_DELEGATED_ADMIN_PRIVILEGES": event.PrivilegeGrant,
	"TURN_OFF_2_STEP_VERIFICATION":     event.MFADisable,
	"REVOKE_SECURITY_KEY":              event.MFADisable,
	"GENERATE_2SV_SCRATCH_CODES":       event.CredentialCreate,
	"CREATE_GROUP":                     event.GroupCreate,
	"DELETE_GROUP":                     event.GroupDelete,
	"ADD_GROUP_MEMBER":                 event.GroupMemberAdd,
	"REMOVE_GROUP_MEMBER":              event.GroupMemberRemove,
	"UPDATE_GROUP_MEMBER":              event.GroupModify,
	"ASSIGN_ROLE":                      event.PrivilegeGrant,
	"UNASSIGN_ROLE":                    event.PrivilegeRevoke,
	"ADD_PRIVILEGE":                    event.PrivilegeGrant,
	"REMOVE_PRIVILEGE":                 event.PrivilegeRevoke,
}

// activity is one Reports API activity.
type activity struct {
	ID *struct {
		Time            string          `json:"time"`
		UniqueQualifier json.RawMessage `json:"uniqueQualifier"`
		ApplicationName string          `json:"applicationName"`
		CustomerID      string          `json:"customerId"`
	} `json:"id"`
	Actor struct {
		CallerType string `json:"callerType"`
		Email      string `json:"email"`
		ProfileID  string `json:"profileId"`
		Key        string `json:"key"`
	} `json:"actor"`
	IPAddress string `json:"ipAddress"`
	Events    []struct {
		Type       string `json:"type"`
		Name       string `json:"name"`
		Parameters []struct {
			Name       string          `json:"name"`
			Value      string          `json:"value"`
			MultiValue []string        `json:"multiValue"`
			IntValue   json.RawMessage `json:"intValue"`
			BoolValue  *bool           `json:"boolValue"`
		} `json:"parameters"`
	} `json:"events"`
}

type mapper struct {
	instance string
	now      func() time.Time
}

// Map maps one activity to one event per provisioning event it holds.
func (m *mapper) Map(rec []byte) ([]event.Event, bool, error) {
	var a activity
	if err := json.Unmarshal(rec, &a); err != nil {
		return nil, false, fmt.Errorf("not a Reports activity: %w", err)
	}
	if a.ID == nil || a.ID.Time == "" {
		return nil, false, errors.New("activity has no id.time")
	}
	known := false
	for _, e := range a.Events {
		if _, ok := actions[e.Name]; ok {
			known = true
		}
	}
	if !known {
		return nil, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, a.ID.Time)
	if err != nil {
		return nil, false, fmt.Errorf("id.time %q: %w", a.ID.Time, err)
	}
	// uniqueQualifier is a (possibly negative) int64 the API sends as a
	// string; accept a number too.
	uq := strings.Trim(string(a.ID.UniqueQualifier), `"`)
	if uq == "" {
		return nil, false, errors.New("activity has no id.uniqueQualifier")
	}
	// The whole id object identifies the activity.
	key := a.ID.Time + "/" + uq + "/" + a.ID.ApplicationName + "/" + a.ID.CustomerID
	actor := event.Actor{Name: a.Actor.Email, ID: a.Actor.ProfileID, Type: event.ActorUnknown}
	switch a.Actor.CallerType {
	case "USER":
		actor.Type = event.ActorHuman
	case "KEY":
		actor.Type, actor.Name = event.ActorService, firstOf(a.Actor.Email, a.Actor.Key)
	}
	var evs []event.Event
	var errs []error
	for i, e := range a.Events {
		action, ok := actions[e.Name]
		if !ok {
			continue
		}
		params := map[string]string{}
		for _, p := range e.Parameters {
			v := p.Value
			switch {
			case len(p.MultiValue) > 0:
				v = strings.Join(p.MultiValue, ",")
			case len(p.IntValue) > 0:
				v = strings.Trim(string(p.IntValue), `"`)
			case p.BoolValue != nil:
				v = strconv.FormatBool(*p.BoolValue)
			}
			params[p.Name] = v
		}
		ev := event.Event{
			ID:           event.NewID(Type, a.ID.CustomerID, key+"#"+strconv.Itoa(i)),
			Time:         t,
			ObservedTime: m.now(),
			Action:       action,
			Outcome:      event.OutcomeSuccess, // the admin log records completed changes
			Actor:        actor,
			Origin:       event.Origin{System: "workspace", Instance: a.ID.CustomerID, IP: a.IPAddress},
			Source:       event.Source{Collector: Type, Instance: m.instance, EventID: key},
			Raw:          cloudjson.RedactRaw(rec),
		}
		if u := params["USER_EMAIL"]; u != "" {
			ev.Target.User = &event.User{Name: u, Email: cloudjson.Email(u)}
		}
		if g := params["GROUP_EMAIL"]; g != "" {
			ev.Target.Group = &event.Group{Name: g}
		}
		switch e.Name {
		case "GRANT_ADMIN_PRIVILEGE", "REVOKE_ADMIN_PRIVILEGE":
			ev.Target.Privileges = []string{"super admin"}
		case "GRANT_DELEGATED_ADMIN_PRIVILEGES", "ASSIGN_ROLE", "UNASSIGN_ROLE":
			ev.Target.Privileges = []string{firstOf(params["ROLE_NAME"], params["ROLE_ID"], "delegated admin")}
		case "ADD_PRIVILEGE", "REMOVE_PRIVILEGE":
			ev.Target.Privileges = []string{firstOf(params["ROLE_NAME"], params["ROLE_ID"], "role") + ":" + firstOf(params["PRIVILEGE_NAME"], "privilege")}
		case "RENAME_USER":
			ev.Changes = append(ev.Changes, event.Change{Field: "email", Old: params["USER_EMAIL"], New: params["NEW_VALUE"]})
		case "UPDATE_GROUP_MEMBER", "MOVE_USER_TO_ORG_UNIT":
			if params["OLD_VALUE"] != "" || params["NEW_VALUE"] != "" {
				ev.Changes = append(ev.Changes, event.Change{Field: strings.ToLower(e.Name), Old: params["OLD_VALUE"], New: params["NEW_VALUE"]})
			}
		}
		ev.Complete()
		if err := event.Validate(&ev); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", e.Name, key, err))
			continue
		}
		evs = append(evs, ev)
	}
	if len(evs) == 0 && len(errs) > 0 {
		return nil, false, errors.Join(errs...)
	}
	return evs, len(evs) > 0, nil
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
