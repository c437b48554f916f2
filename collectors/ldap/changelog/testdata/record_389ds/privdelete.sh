#!/bin/sh
# Part 6: members leave the privileged group by deletion: helpdesk adds
# erin to admins and deletes dave (Referential Integrity removes him from
# admins); Directory Manager deletes admins while erin is in it.
set -eu
U=${U:-ldap://127.0.0.1:38930}
DMPW=${DMPW:?}
B=dc=example,dc=com
ldapmodify -x -H "$U" -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' <<EOF
dn: cn=admins,ou=groups,$B
changetype: modify
add: member
member: uid=erin,ou=people,$B
EOF
ldapdelete -x -H "$U" -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' "uid=dave,ou=people,$B"
ldapdelete -x -H "$U" -D "cn=Directory Manager" -w "$DMPW" "cn=admins,ou=groups,$B"
