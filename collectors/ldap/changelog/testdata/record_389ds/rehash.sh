#!/bin/sh
# Part 5: a password stored in an old scheme is re-hashed by the server on
# the user's next bind (nsslapd-enable-upgrade-hash: on, the default).
set -eu
U=${U:-ldap://127.0.0.1:38930}
DMPW=${DMPW:?}
B=dc=example,dc=com
H=$(slappasswd -h '{SSHA}' -s 'Erin-Old-Pw10')
ldapadd -x -H "$U" -D "cn=Directory Manager" -w "$DMPW" <<EOF
dn: uid=erin,ou=people,$B
objectClass: top
objectClass: inetOrgPerson
uid: erin
cn: Erin Example
sn: Example
userPassword: $H
EOF
ldapwhoami -x -H "$U" -D "uid=erin,ou=people,$B" -w 'Erin-Old-Pw10'
