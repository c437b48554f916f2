// Package norm turns LDAP change records (an OpenLDAP accesslog entry, a
// 389-DS retro changelog entry), once decoded into a Change, into
// provtrail events. The mapping:
//
//	add of a user entry                    user.create (attribute names; password attrs Redacted)
//	add of a group entry                   group.create, group.member.add per initial member
//	delete                                 user.delete / group.delete (+ privilege.revoke per member of a privileged group)
//	modrdn                                 user.rename / group.modify, change dn old -> new
//	password attribute, pwdChangedTime     password.change when the actor is the target, else password.reset;
//	                                       pwdReset: TRUE is always a reset
//	pwdAccountLockedTime, nsAccountLock    user.lock / user.unlock
//	member, uniqueMember, memberUid        group.member.add / .remove; a replace or whole-attribute delete is
//	                                       diffed against the old values (accesslog reqOld); without them,
//	                                       group.modify naming the attribute
//	privileged group membership            also privilege.grant / privilege.revoke
//	anything else                          user.modify / group.modify with attribute names only
//	failed operation (result != 0)         the same actions with outcome failure and an ldap_result change
//
// Entries that are neither users nor groups (classified by objectClass,
// configurable, then by DN shape) and bookkeeping-only changes
// (modifyTimestamp, entryCSN, passwordGraceUserTime, ...) yield nothing.
// Secret values never reach an event: see Secrets.
package norm
