#!/bin/sh
# Makes the recorded changes against a throwaway 389-DS instance with the
# Retro Changelog, MemberOf and Referential Integrity plugins enabled.
# Every password here is a throwaway test value the tests search for.
set -eu
U=${U:-ldap://127.0.0.1:38930}
DMPW=${DMPW:?set DMPW to the Directory Manager password}
B=dc=example,dc=com
dm() { "$@" -x -H "$U" -D "cn=Directory Manager" -w "$DMPW"; }
hd() { "$@" -x -H "$U" -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1'; }

# 1. A helpdesk account with write access to people and groups (so its
#    changes carry its own creatorsName/modifiersName), by Directory Manager.
dm ldapadd <<EOF
dn: uid=helpdesk,ou=people,$B
objectClass: top
objectClass: inetOrgPerson
uid: helpdesk
cn: Help Desk
sn: Desk
userPassword: Helpdesk-Rec-Pw1

dn: ou=disabled,$B
objectClass: top
objectClass: organizationalUnit
ou: disabled
EOF
dm ldapmodify <<EOF
dn: ou=people,$B
changetype: modify
add: aci
aci: (targetattr="*")(version 3.0; acl "provtrail helpdesk people"; allow (all) userdn="ldap:///uid=helpdesk,ou=people,$B";)

dn: ou=groups,$B
changetype: modify
add: aci
aci: (targetattr="*")(version 3.0; acl "provtrail helpdesk groups"; allow (all) userdn="ldap:///uid=helpdesk,ou=people,$B";)
EOF

# 2. Users: alice by Directory Manager, bob and carol by helpdesk.
dm ldapadd <<EOF
dn: uid=alice,ou=people,$B
objectClass: top
objectClass: inetOrgPerson
objectClass: posixAccount
uid: alice
cn: Alice Example
sn: Example
uidNumber: 10001
gidNumber: 10001
homeDirectory: /home/alice
loginShell: /bin/bash
userPassword: Alice-Initial-Pw1
EOF
hd ldapadd <<EOF
dn: uid=bob,ou=people,$B
objectClass: top
objectClass: inetOrgPerson
objectClass: posixAccount
uid: bob
cn: Bob Example
sn: Example
uidNumber: 10002
gidNumber: 10002
homeDirectory: /home/bob
userPassword: Bob-Initial-Pw2

dn: uid=carol,ou=people,$B
objectClass: top
objectClass: inetOrgPerson
uid: carol
cn: Carol Example
sn: Example
mail: carol@example.com
EOF

# 3. Groups, by helpdesk: groupOfNames, posixGroup (memberUid),
#    groupOfUniqueNames, and a privileged groupOfNames.
hd ldapadd <<EOF
dn: cn=developers,ou=groups,$B
objectClass: top
objectClass: groupOfNames
cn: developers
member: uid=alice,ou=people,$B

dn: cn=staff,ou=groups,$B
objectClass: top
objectClass: posixGroup
cn: staff
gidNumber: 20000
memberUid: alice

dn: cn=auditors,ou=groups,$B
objectClass: top
objectClass: groupOfUniqueNames
cn: auditors
uniqueMember: uid=alice,ou=people,$B

dn: cn=admins,ou=groups,$B
objectClass: top
objectClass: groupOfNames
cn: admins
EOF

# 4. Member adds.
hd ldapmodify <<EOF
dn: cn=developers,ou=groups,$B
changetype: modify
add: member
member: uid=bob,ou=people,$B

dn: cn=staff,ou=groups,$B
changetype: modify
add: memberUid
memberUid: bob

dn: cn=auditors,ou=groups,$B
changetype: modify
add: uniqueMember
uniqueMember: uid=bob,ou=people,$B

dn: cn=admins,ou=groups,$B
changetype: modify
add: member
member: uid=bob,ou=people,$B
EOF

# 5. Alice changes her own password (self bind, plain modify: the
#    Password Modify extended operation needs TLS on 389-DS).
ldapmodify -x -H "$U" -D "uid=alice,ou=people,$B" -w 'Alice-Initial-Pw1' <<EOF
dn: uid=alice,ou=people,$B
changetype: modify
replace: userPassword
userPassword: Alice-Changed-Pw3
EOF

# 6. The cleartext copy switched on (FreeIPA with winsync does this), then
#    Directory Manager resets bob's password and helpdesk sets carol's.
dm ldapmodify <<EOF
dn: cn=config
changetype: modify
replace: nsslapd-unhashed-pw-switch
nsslapd-unhashed-pw-switch: on
EOF
dm ldapmodify <<EOF
dn: uid=bob,ou=people,$B
changetype: modify
replace: userPassword
userPassword: Bob-Reset-Pw4
EOF
hd ldapmodify <<EOF
dn: uid=carol,ou=people,$B
changetype: modify
add: userPassword
userPassword: Carol-Set-Pw5
EOF
# A user binds with the new password (389-DS may write internal
# bookkeeping such as passwordgraceusertime).
ldapwhoami -x -H "$U" -D "uid=bob,ou=people,$B" -w 'Bob-Reset-Pw4'
dm ldapmodify <<EOF
dn: cn=config
changetype: modify
replace: nsslapd-unhashed-pw-switch
nsslapd-unhashed-pw-switch: off
EOF

# 7. Member removals: one value; a whole-attribute replace; a whole-
#    attribute delete; and the privileged group loses bob.
hd ldapmodify <<EOF
dn: cn=developers,ou=groups,$B
changetype: modify
delete: member
member: uid=alice,ou=people,$B

dn: cn=staff,ou=groups,$B
changetype: modify
replace: memberUid
memberUid: bob
memberUid: carol

dn: cn=auditors,ou=groups,$B
changetype: modify
delete: uniqueMember

dn: cn=admins,ou=groups,$B
changetype: modify
delete: member
member: uid=bob,ou=people,$B
EOF

# 8. Plain attribute modifications and a lock/unlock by helpdesk.
hd ldapmodify <<EOF
dn: uid=bob,ou=people,$B
changetype: modify
replace: loginShell
loginShell: /bin/zsh
-
add: mail
mail: bob@example.com

dn: uid=bob,ou=people,$B
changetype: modify
replace: nsAccountLock
nsAccountLock: true

dn: uid=bob,ou=people,$B
changetype: modify
delete: nsAccountLock
EOF

# 9. Renames: alice to alice2 (memberOf / referential integrity follow),
#    and a move of carol into ou=disabled by Directory Manager.
hd ldapmodrdn -r "uid=alice,ou=people,$B" "uid=alice2"
dm ldapmodrdn -r -s "ou=disabled,$B" "uid=carol,ou=people,$B" "uid=carol"

# 10. Deletes: a user (bob, still a member of several groups) by helpdesk
#     and a group by Directory Manager.
hd ldapdelete "uid=bob,ou=people,$B"
dm ldapdelete "cn=auditors,ou=groups,$B"

# 11. dsidm's account lock and unlock (as an administrator would).
dsidm -D "cn=Directory Manager" -w "$DMPW" "$U" -b "$B" account lock "uid=alice2,ou=people,$B"
dsidm -D "cn=Directory Manager" -w "$DMPW" "$U" -b "$B" account unlock "uid=alice2,ou=people,$B"

# 12. Password policy lockout: two failed binds lock alice2 (the server
#     writes passwordRetryCount / accountUnlockTime itself).
dm ldapmodify <<EOF
dn: cn=config
changetype: modify
replace: passwordLockout
passwordLockout: on
-
replace: passwordMaxFailure
passwordMaxFailure: 2
EOF
ldapwhoami -x -H "$U" -D "uid=alice2,ou=people,$B" -w 'wrong-pw-1' || true
ldapwhoami -x -H "$U" -D "uid=alice2,ou=people,$B" -w 'wrong-pw-2' || true
ldapwhoami -x -H "$U" -D "uid=alice2,ou=people,$B" -w 'Alice-Changed-Pw3' || true
dm ldapmodify <<EOF
dn: cn=config
changetype: modify
replace: passwordLockout
passwordLockout: off
EOF
