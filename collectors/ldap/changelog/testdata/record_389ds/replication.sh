#!/bin/sh
# Part 7: a second supplier (instance provtrailrep, port 38940, created
# from the same .inf with sample_entries = no, configured by configure.sh),
# two-way replication, then changes on each supplier.
set -eu
DMPW=${DMPW:?}
RPW=${RPW:?set RPW to a throwaway replication manager password}
U1=ldap://127.0.0.1:38930
U2=ldap://127.0.0.1:38940
B=dc=example,dc=com
dsconf -D "cn=Directory Manager" -w "$DMPW" $U1 replication enable --suffix $B --role supplier --replica-id 1 --bind-dn "cn=replication manager,cn=config" --bind-passwd "$RPW"
dsconf -D "cn=Directory Manager" -w "$DMPW" $U2 replication enable --suffix $B --role supplier --replica-id 2 --bind-dn "cn=replication manager,cn=config" --bind-passwd "$RPW"
dsconf -D "cn=Directory Manager" -w "$DMPW" $U1 repl-agmt create --suffix $B --host 127.0.0.1 --port 38940 --conn-protocol LDAP --bind-dn "cn=replication manager,cn=config" --bind-passwd "$RPW" --bind-method SIMPLE --init to2
sleep 5
dsconf -D "cn=Directory Manager" -w "$DMPW" $U2 repl-agmt create --suffix $B --host 127.0.0.1 --port 38930 --conn-protocol LDAP --bind-dn "cn=replication manager,cn=config" --bind-passwd "$RPW" --bind-method SIMPLE to1
# On supplier 2: frank, and frank into developers.
ldapadd -x -H $U2 -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' <<EOF
dn: uid=frank,ou=people,$B
objectClass: top
objectClass: inetOrgPerson
objectClass: nsMemberOf
uid: frank
cn: Frank Example
sn: Example
userPassword: Frank-Repl-Pw11
EOF
ldapmodify -x -H $U2 -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' <<EOF
dn: cn=developers,ou=groups,$B
changetype: modify
add: member
member: uid=frank,ou=people,$B
EOF
# On supplier 1: frank's mail.
ldapmodify -x -H $U1 -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' <<EOF
dn: uid=frank,ou=people,$B
changetype: modify
replace: mail
mail: frank@example.com
EOF
sleep 8
