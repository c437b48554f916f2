package cloudtrail

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/cloudjson"
	"github.com/provtrail/provtrail/event"
)

// Type is the collector type.
const Type = "cloudtrail"

// rule says how one eventSource/eventName is mapped.
type rule struct {
	action event.Action
	// principal: where the target principal is ("user", "group",
	// "role", "member" for group membership, "self" for the caller).
	target string
}

// rules maps "eventSource eventName" to a rule: the provisioning event
// names of IAM, IAM Identity Center (sso, identitystore, SCIM, the console
// directory) and Organizations service control policies.
// It is built once and only read.
var rules = buildRules()

const (
	iam      = "iam.amazonaws.com"
	sso      = "sso.amazonaws.com"
	idstore  = "identitystore.amazonaws.com"
	scim     = "identitystore-scim.amazonaws.com"
	ssoDir   = "sso-directory.amazonaws.com"
	orgs     = "organizations.amazonaws.com"
	hiddenAW = "HIDDEN_DUE_TO_SECURITY_REASONS"
)

func buildRules() map[string]rule {
	rules := map[string]rule{}
	add := func(source string, target string, action event.Action, names ...string) {
		for _, n := range names {
			rules[source+" "+n] = rule{action: action, target: target}
		}
	}
	add(iam, "user", event.UserCreate, "CreateUser")
	add(iam, "user", event.UserDelete, "DeleteUser")
	add(iam, "user", event.UserModify, "UpdateUser", "TagUser", "UntagUser")
	add(iam, "user", event.PasswordReset, "CreateLoginProfile", "UpdateLoginProfile")
	add(iam, "user", event.UserDisable, "DeleteLoginProfile")
	add(iam, "self", event.PasswordChange, "ChangePassword")
	add(iam, "group", event.GroupCreate, "CreateGroup")
	add(iam, "group", event.GroupDelete, "DeleteGroup")
	add(iam, "member", event.GroupMemberAdd, "AddUserToGroup")
	add(iam, "member", event.GroupMemberRemove, "RemoveUserFromGroup")
	add(iam, "user", event.PrivilegeGrant, "AttachUserPolicy", "PutUserPolicy", "PutUserPermissionsBoundary")
	add(iam, "user", event.PrivilegeRevoke, "DetachUserPolicy", "DeleteUserPolicy", "DeleteUserPermissionsBoundary")
	add(iam, "group", event.PrivilegeGrant, "AttachGroupPolicy", "PutGroupPolicy")
	add(iam, "group", event.PrivilegeRevoke, "DetachGroupPolicy", "DeleteGroupPolicy")
	add(iam, "role", event.PrivilegeGrant, "AttachRolePolicy", "PutRolePolicy", "PutRolePermissionsBoundary", "UpdateAssumeRolePolicy")
	add(iam, "role", event.PrivilegeRevoke, "DetachRolePolicy", "DeleteRolePolicy", "DeleteRolePermissionsBoundary")
	add(iam, "", event.PrivilegeGrant, "CreatePolicyVersion", "SetDefaultPolicyVersion")
	add(iam, "role", event.UserCreate, "CreateRole", "CreateServiceLinkedRole")
	add(iam, "role", event.UserDelete, "DeleteRole", "DeleteServiceLinkedRole")
	add(iam, "role", event.UserModify, "UpdateRole")
	add(iam, "user", event.CredentialCreate, "CreateAccessKey", "CreateServiceSpecificCredential", "UploadSSHPublicKey", "UploadSigningCertificate")
	add(iam, "user", event.CredentialDelete, "DeleteAccessKey", "DeleteServiceSpecificCredential", "DeleteSSHPublicKey", "DeleteSigningCertificate")
	add(iam, "user", event.UserModify, "UpdateAccessKey")
	add(iam, "user", event.MFAEnable, "EnableMFADevice")
	add(iam, "user", event.MFADisable, "DeactivateMFADevice")
	add(sso, "principal", event.PrivilegeGrant, "CreateAccountAssignment", "CreateApplicationAssignment")
	add(sso, "principal", event.PrivilegeRevoke, "DeleteAccountAssignment", "DeleteApplicationAssignment")
	add(sso, "", event.PrivilegeGrant, "AttachManagedPolicyToPermissionSet", "PutInlinePolicyToPermissionSet",
		"AttachCustomerManagedPolicyReferenceToPermissionSet", "PutPermissionsBoundaryToPermissionSet")
	add(sso, "", event.PrivilegeRevoke, "DetachManagedPolicyFromPermissionSet", "DeleteInlinePolicyFromPermissionSet",
		"DetachCustomerManagedPolicyReferenceFromPermissionSet", "DeletePermissionsBoundaryFromPermissionSet")
	for _, src := range []string{idstore, scim, ssoDir} {
		add(src, "user", event.UserCreate, "CreateUser")
		add(src, "user", event.UserDelete, "DeleteUser")
		add(src, "user", event.UserModify, "UpdateUser", "PutUser", "PatchUser")
		add(src, "group", event.GroupCreate, "CreateGroup")
		add(src, "group", event.GroupDelete, "DeleteGroup")
		add(src, "group", event.GroupModify, "UpdateGroup", "PatchGroup", "PutGroup")
	}
	add(idstore, "member", event.GroupMemberAdd, "CreateGroupMembership")
	add(idstore, "member", event.GroupMemberRemove, "DeleteGroupMembership")
	add(ssoDir, "member", event.GroupMemberAdd, "AddMemberToGroup")
	add(ssoDir, "member", event.GroupMemberRemove, "RemoveMemberFromGroup")
	add(ssoDir, "user", event.UserDisable, "DisableUser")
	add(ssoDir, "user", event.UserEnable, "EnableUser")
	add(orgs, "", event.PrivilegeGrant, "AttachPolicy")
	add(orgs, "", event.PrivilegeRevoke, "DetachPolicy")
	return rules
}

// record is the part of a CloudTrail record the mapping reads.
type record struct {
	UserIdentity struct {
		Type           string `json:"type"`
		PrincipalID    string `json:"principalId"`
		ARN            string `json:"arn"`
		AccountID      string `json:"accountId"`
		AccessKeyID    string `json:"accessKeyId"`
		UserName       string `json:"userName"`
		InvokedBy      string `json:"invokedBy"`
		SessionContext *struct {
			SessionIssuer *struct {
				UserName string `json:"userName"`
				ARN      string `json:"arn"`
			} `json:"sessionIssuer"`
			Attributes map[string]string `json:"attributes"`
		} `json:"sessionContext"`
		OnBehalfOf *struct {
			UserID string `json:"userId"`
		} `json:"onBehalfOf"`
	} `json:"userIdentity"`
	EventTime          string         `json:"eventTime"`
	EventSource        string         `json:"eventSource"`
	EventName          string         `json:"eventName"`
	AWSRegion          string         `json:"awsRegion"`
	SourceIPAddress    string         `json:"sourceIPAddress"`
	UserAgent          string         `json:"userAgent"`
	ErrorCode          string         `json:"errorCode"`
	ErrorMessage       string         `json:"errorMessage"`
	RequestParameters  map[string]any `json:"requestParameters"`
	ResponseElements   map[string]any `json:"responseElements"`
	EventID            string         `json:"eventID"`
	RecipientAccountID string         `json:"recipientAccountId"`
}

type mapper struct {
	instance string
	now      func() time.Time
}

// Map maps one CloudTrail record, or a LookupEvents Event wrapping one in
// its CloudTrailEvent string.
func (m *mapper) Map(rec []byte) (event.Event, bool, error) {
	var wrapped struct {
		CloudTrailEvent *string `json:"CloudTrailEvent"`
	}
	if err := json.Unmarshal(rec, &wrapped); err != nil {
		return event.Event{}, false, fmt.Errorf("not a CloudTrail record: %w", err)
	}
	if wrapped.CloudTrailEvent != nil {
		rec = []byte(*wrapped.CloudTrailEvent)
	}
	var r record
	if err := json.Unmarshal(rec, &r); err != nil {
		return event.Event{}, false, fmt.Errorf("not a CloudTrail record: %w", err)
	}
	if r.EventSource == "" || r.EventName == "" {
		return event.Event{}, false, errors.New("CloudTrail record has no eventSource/eventName")
	}
	ru, ok := rules[r.EventSource+" "+r.EventName]
	if !ok {
		return event.Event{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, r.EventTime)
	if err != nil {
		return event.Event{}, false, fmt.Errorf("%s %s: eventTime %q: %w", r.EventSource, r.EventName, r.EventTime, err)
	}
	account := firstOf(r.RecipientAccountID, r.UserIdentity.AccountID)
	ev := event.Event{
		Time:         t,
		ObservedTime: m.now(),
		Action:       ru.action,
		Outcome:      event.OutcomeSuccess,
		Origin:       event.Origin{System: "aws", Instance: account, UserAgent: r.UserAgent, Program: r.EventSource},
		Source:       event.Source{Collector: Type, Instance: m.instance},
		Raw:          cloudjson.RedactRaw(rec),
	}
	if r.EventID != "" && r.EventID != "xxxx" {
		ev.Source.EventID = r.EventID
		ev.ID = event.NewID(Type, account, r.EventID)
	} else {
		// Old (eventVersion 1.0) records carry no eventID: the record's
		// own bytes identify it.
		sum := sha256.Sum256(rec)
		ev.ID = event.NewID(Type, account, "sha256:"+hex.EncodeToString(sum[:]))
	}
	if ip := net.ParseIP(r.SourceIPAddress); ip != nil {
		ev.Origin.IP = r.SourceIPAddress
	} else if r.SourceIPAddress != "" && !strings.Contains(r.SourceIPAddress, "x") {
		ev.Origin.Host = r.SourceIPAddress // an AWS service, e.g. signin.amazonaws.com
	}
	if r.ErrorCode != "" {
		ev.Outcome = event.OutcomeFailure
		ev.Changes = append(ev.Changes, event.Change{Field: "error", New: cut(r.ErrorCode + ": " + r.ErrorMessage)})
	}
	m.actor(&ev, &r)
	m.target(&ev, &r, ru)
	ev.Complete()
	if err := event.Validate(&ev); err != nil {
		return ev, false, fmt.Errorf("%s %s %s: %w", r.EventSource, r.EventName, r.EventID, err)
	}
	return ev, true, nil
}

func (m *mapper) actor(ev *event.Event, r *record) {
	u := r.UserIdentity
	a := event.Actor{ID: firstOf(u.ARN, u.PrincipalID), Session: u.AccessKeyID}
	switch u.Type {
	case "Root":
		a.Name, a.Type = "root", event.ActorHuman
	case "IAMUser":
		a.Name, a.Type = u.UserName, event.ActorHuman
	case "AssumedRole", "FederatedUser":
		// arn:aws:sts::ACCT:assumed-role/ROLE/SESSION -> ROLE/SESSION
		if i := strings.Index(u.ARN, ":assumed-role/"); i >= 0 {
			a.Name = u.ARN[i+len(":assumed-role/"):]
		} else {
			a.Name = u.ARN
		}
		a.Type = event.ActorUnknown
		if u.SessionContext != nil && u.SessionContext.SessionIssuer != nil {
			a.OnBehalfOf = u.SessionContext.SessionIssuer.ARN
		}
	case "IdentityCenterUser":
		a.Type = event.ActorHuman
		if u.OnBehalfOf != nil {
			a.Name, a.ID = u.OnBehalfOf.UserID, u.OnBehalfOf.UserID
		}
	case "AWSService", "AWSAccount":
		a.Type = event.ActorService
	default:
		a.Type = event.ActorUnknown
	}
	if a.Name == "" {
		a.Name = firstOf(u.UserName, u.InvokedBy, u.PrincipalID)
	}
	if u.InvokedBy != "" && u.Type != "AWSService" {
		a.Type = event.ActorService
		a.Auth = "invoked-by:" + u.InvokedBy
	}
	if sc := u.SessionContext; sc != nil && sc.Attributes["mfaAuthenticated"] == "true" {
		a.Auth = "mfa"
	}
	if a.Session == "xxxx" {
		a.Session = ""
	}
	ev.Actor = a
}

func (m *mapper) target(ev *event.Event, r *record, ru rule) {
	rp, re := r.RequestParameters, r.ResponseElements
	str := func(m map[string]any, path ...string) string {
		var cur any = m
		for _, p := range path {
			mm, ok := cur.(map[string]any)
			if !ok {
				return ""
			}
			cur = mm[p]
		}
		s, _ := cur.(string)
		if s == hiddenAW {
			return ""
		}
		return s
	}
	user := func(name, id string) {
		if name != "" || id != "" {
			ev.Target.User = &event.User{Name: name, ID: id, Email: cloudjson.Email(name)}
		}
	}
	group := func(name, id string) {
		if name != "" || id != "" {
			ev.Target.Group = &event.Group{Name: name, ID: id}
		}
	}
	switch ru.target {
	case "user", "member":
		name := str(rp, "userName")
		id := firstOf(str(rp, "userId"), str(re, "user", "userId"), str(re, "id"), str(rp, "memberId", "userId"))
		if name == "" && id == "" && (ev.Action == event.CredentialCreate || ev.Action == event.CredentialDelete ||
			ev.Action == event.MFAEnable || ev.Action == event.MFADisable || ev.Action == event.UserModify) {
			// Acting on one's own keys/devices: no userName parameter.
			name = r.UserIdentity.UserName
		}
		user(name, id)
		if ru.target == "member" {
			group(str(rp, "groupName"), str(rp, "groupId"))
			if ev.Target.User == nil {
				// DeleteGroupMembership names only the membership.
				user("", str(rp, "membershipId"))
			}
		}
	case "self":
		user(r.UserIdentity.UserName, r.UserIdentity.ARN)
	case "group":
		group(str(rp, "groupName"), firstOf(str(rp, "groupId"), str(re, "group", "groupId"), str(re, "groupId"), str(re, "id")))
		if ev.Target.Group == nil {
			group(str(rp, "displayName"), "")
		}
	case "role":
		name := str(rp, "roleName")
		id := str(re, "role", "arn")
		if name != "" && id == "" {
			id = "role/" + name
		}
		user(name, id)
	case "principal":
		pid := str(rp, "principalId")
		if strings.EqualFold(str(rp, "principalType"), "GROUP") {
			group("", pid)
		} else {
			user("", pid)
		}
	}
	// SCIM PatchUser / PatchGroup: read the operations.
	if r.EventSource == scim || r.EventSource == ssoDir {
		if ev.Target.User == nil && ru.target == "user" {
			user(str(rp, "httpBody", "userName"), firstOf(str(rp, "userId"), str(re, "id")))
		}
		if ev.Target.Group == nil && ru.target == "group" {
			group(str(rp, "httpBody", "displayName"), firstOf(str(rp, "groupId"), str(re, "id")))
		}
		patchOps(ev, rp)
	}
	if ev.Action == event.PrivilegeGrant || ev.Action == event.PrivilegeRevoke {
		var privs []string
		for _, p := range []string{
			str(rp, "policyArn"), prefixed("inline:", str(rp, "policyName")), str(rp, "permissionsBoundary"),
			str(rp, "permissionSetArn"), str(rp, "policyId"), str(rp, "applicationArn"),
		} {
			if p != "" {
				privs = append(privs, p)
			}
		}
		if ref, ok := rp["customerManagedPolicyReference"].(map[string]any); ok {
			if n, _ := ref["Name"].(string); n != "" {
				privs = append(privs, "customer-managed:"+n)
			}
		}
		if r.EventName == "UpdateAssumeRolePolicy" {
			privs = append(privs, "sts:AssumeRole")
		}
		if len(privs) == 0 {
			privs = []string{r.EventSource + ":" + r.EventName}
		}
		if acct := str(rp, "targetId"); acct != "" {
			for i := range privs {
				privs[i] += " on " + str(rp, "targetType") + " " + acct
			}
		}
		ev.Target.Privileges = privs
	}
	if r.EventName == "UpdateAccessKey" {
		ev.Changes = append(ev.Changes, event.Change{Field: "access_key_status", New: str(rp, "status")})
	}
	if ev.Target.User == nil && ev.Target.Group == nil && len(ev.Target.Privileges) == 0 {
		// Nothing names the target (e.g. a redacted SCIM body).
		user("", firstOf(str(re, "id"), str(rp, "userId")))
	}
}

// patchOps reads SCIM PatchOp operations: active=false disables a user,
// members add/remove change a group.
func patchOps(ev *event.Event, rp map[string]any) {
	body, _ := rp["httpBody"].(map[string]any)
	ops, _ := body["Operations"].([]any)
	var adds, removes int
	for _, o := range ops {
		op, _ := o.(map[string]any)
		kind, _ := op["op"].(string)
		path, _ := op["path"].(string)
		switch {
		case strings.EqualFold(path, "active"):
			switch v := op["value"].(type) {
			case bool:
				if v {
					ev.Action = event.UserEnable
				} else {
					ev.Action = event.UserDisable
				}
			case string:
				if strings.EqualFold(v, "false") {
					ev.Action = event.UserDisable
				} else if strings.EqualFold(v, "true") {
					ev.Action = event.UserEnable
				}
			}
		case strings.HasPrefix(strings.ToLower(path), "members"):
			if strings.EqualFold(kind, "add") {
				adds++
			} else if strings.EqualFold(kind, "remove") {
				removes++
			}
		}
	}
	if ev.Target.Group != nil && adds+removes > 0 {
		switch {
		case adds > 0 && removes == 0:
			ev.Action = event.GroupMemberAdd
		case removes > 0 && adds == 0:
			ev.Action = event.GroupMemberRemove
		}
		if ev.Target.User == nil {
			ev.Action = event.GroupModify // members named only in the (redacted) body
		}
	}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func cut(s string) string {
	if len(s) > 256 {
		return s[:256]
	}
	return s
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
