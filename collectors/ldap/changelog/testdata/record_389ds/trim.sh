#!/bin/sh
# Part 3: trim the changelog, then two more changes on top of it.
set -eu
U=${U:-ldap://127.0.0.1:38930}
DMPW=${DMPW:?}
B=dc=example,dc=com
dsconf -D "cn=Directory Manager" -w "$DMPW" "$U" plugin retro-changelog set --max-age 10s --trim-interval 5
dsctl provtrailrec restart          # the new max age applies after a restart
sleep 15                            # firstchangenumber 1 -> 46 (the last entry is kept)
dsconf -D "cn=Directory Manager" -w "$DMPW" "$U" plugin retro-changelog set --max-age 2d --trim-interval 300
dsctl provtrailrec restart
ldapadd -x -H "$U" -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' <<EOF
dn: uid=dave,ou=people,$B
objectClass: top
objectClass: inetOrgPerson
objectClass: nsMemberOf
uid: dave
cn: Dave Example
sn: Example
userPassword: Dave-Initial-Pw7
EOF
ldapmodify -x -H "$U" -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' <<EOF
dn: cn=admins,ou=groups,$B
changetype: modify
add: member
member: uid=dave,ou=people,$B
EOF
