package event

import (
	"fmt"
	"slices"
)

// Action names the kind of change an event records.
type Action string

// The action vocabulary of schema v1.
const (
	UserCreate  Action = "user.create"
	UserDelete  Action = "user.delete"
	UserModify  Action = "user.modify"
	UserRename  Action = "user.rename"
	UserEnable  Action = "user.enable"
	UserDisable Action = "user.disable"
	UserLock    Action = "user.lock"
	UserUnlock  Action = "user.unlock"

	PasswordChange Action = "password.change"
	PasswordReset  Action = "password.reset"

	MFAEnable  Action = "mfa.enable"
	MFADisable Action = "mfa.disable"

	GroupCreate       Action = "group.create"
	GroupDelete       Action = "group.delete"
	GroupModify       Action = "group.modify"
	GroupMemberAdd    Action = "group.member.add"
	GroupMemberRemove Action = "group.member.remove"

	PrivilegeGrant  Action = "privilege.grant"
	PrivilegeRevoke Action = "privilege.revoke"

	CredentialCreate Action = "credential.create"
	CredentialDelete Action = "credential.delete"
)

// OCSF category and classes used by schema v1 (OCSF 1.8.0, IAM category).
const (
	OCSFVersion            = "1.8.0"
	OCSFCategoryIAM        = 3
	OCSFClassAccountChange = 3001
	OCSFClassUserAccess    = 3005
	OCSFClassGroupMgmt     = 3006
	// OCSFActivityOther is OCSF's "Other" activity, present in every class.
	OCSFActivityOther = 99
)

// ActionInfo is what the schema knows about one action: where it sits in
// OCSF 1.8 and how ECS categorises it.
type ActionInfo struct {
	OCSFClass    int
	OCSFActivity int
	// ECSType is the ECS event.type list (category is always "iam").
	ECSType []string
	// DefaultSeverity is the severity a collector gives the action when it
	// knows nothing more specific.
	DefaultSeverity Severity
}

// actionTable is the single place that maps actions to OCSF and ECS, so the
// move to OCSF 1.9's User Management class (3007) is a change to this table.
var actionTable = map[Action]ActionInfo{
	UserCreate:        {OCSFClassAccountChange, 1, []string{"user", "creation"}, SeverityMedium},
	UserEnable:        {OCSFClassAccountChange, 2, []string{"user", "change"}, SeverityLow},
	PasswordChange:    {OCSFClassAccountChange, 3, []string{"user", "change"}, SeverityLow},
	PasswordReset:     {OCSFClassAccountChange, 4, []string{"user", "change"}, SeverityMedium},
	UserDisable:       {OCSFClassAccountChange, 5, []string{"user", "change"}, SeverityLow},
	UserDelete:        {OCSFClassAccountChange, 6, []string{"user", "deletion"}, SeverityMedium},
	UserLock:          {OCSFClassAccountChange, 9, []string{"user", "change"}, SeverityLow},
	MFAEnable:         {OCSFClassAccountChange, 10, []string{"user", "change"}, SeverityLow},
	MFADisable:        {OCSFClassAccountChange, 11, []string{"user", "change"}, SeverityMedium},
	UserUnlock:        {OCSFClassAccountChange, 12, []string{"user", "change"}, SeverityLow},
	UserModify:        {OCSFClassAccountChange, OCSFActivityOther, []string{"user", "change"}, SeverityLow},
	UserRename:        {OCSFClassAccountChange, OCSFActivityOther, []string{"user", "change"}, SeverityMedium},
	CredentialCreate:  {OCSFClassAccountChange, OCSFActivityOther, []string{"user", "creation"}, SeverityMedium},
	CredentialDelete:  {OCSFClassAccountChange, OCSFActivityOther, []string{"user", "deletion"}, SeverityLow},
	PrivilegeGrant:    {OCSFClassUserAccess, 1, []string{"user", "change", "admin"}, SeverityHigh},
	PrivilegeRevoke:   {OCSFClassUserAccess, 2, []string{"user", "change", "admin"}, SeverityMedium},
	GroupMemberAdd:    {OCSFClassGroupMgmt, 3, []string{"group", "change", "user"}, SeverityMedium},
	GroupMemberRemove: {OCSFClassGroupMgmt, 4, []string{"group", "change", "user"}, SeverityLow},
	GroupDelete:       {OCSFClassGroupMgmt, 5, []string{"group", "deletion"}, SeverityMedium},
	GroupCreate:       {OCSFClassGroupMgmt, 6, []string{"group", "creation"}, SeverityMedium},
	GroupModify:       {OCSFClassGroupMgmt, OCSFActivityOther, []string{"group", "change"}, SeverityLow},
}

// Actions returns every action of the vocabulary, sorted by name.
func Actions() []Action {
	out := make([]Action, 0, len(actionTable))
	for a := range actionTable {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// Info returns the OCSF and ECS mapping of a, and false when a is not part
// of the vocabulary.
func (a Action) Info() (ActionInfo, bool) {
	info, ok := actionTable[a]
	return info, ok
}

// Valid reports whether a is part of the vocabulary.
func (a Action) Valid() bool {
	_, ok := actionTable[a]
	return ok
}

// OCSF returns the OCSF identifiers for a.
func (a Action) OCSF() (OCSF, error) {
	info, ok := actionTable[a]
	if !ok {
		return OCSF{}, fmt.Errorf("action %q is not in the schema v1 vocabulary", a)
	}
	return OCSF{
		CategoryUID: OCSFCategoryIAM,
		ClassUID:    info.OCSFClass,
		ActivityID:  info.OCSFActivity,
		TypeUID:     info.OCSFClass*100 + info.OCSFActivity,
	}, nil
}
