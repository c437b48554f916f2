#!/bin/sh
# Part 2: what a reset of a locked-out account writes; a group with a
# privileged member added by the MemberOf-aware admin; then trimming.
set -eu
U=${U:-ldap://127.0.0.1:38930}
DMPW=${DMPW:?}
B=dc=example,dc=com
# Directory Manager resets the locked-out alice2's password.
ldapmodify -x -H "$U" -D "cn=Directory Manager" -w "$DMPW" <<EOF
dn: uid=alice2,ou=people,$B
changetype: modify
replace: userPassword
userPassword: Alice-Reset-Pw6
EOF
# alice2 binds successfully with it (clears the failure counters).
ldapwhoami -x -H "$U" -D "uid=alice2,ou=people,$B" -w 'Alice-Reset-Pw6' || true
# An administrator removes the lockout by deleting the lockout attributes.
ldapmodify -x -H "$U" -D "cn=Directory Manager" -w "$DMPW" <<EOF
dn: uid=alice2,ou=people,$B
changetype: modify
delete: accountUnlockTime
-
replace: passwordRetryCount
passwordRetryCount: 0
EOF
ldapwhoami -x -H "$U" -D "uid=alice2,ou=people,$B" -w 'Alice-Reset-Pw6'
