#!/bin/sh
# Part 4: the Password Modify extended operation (ldappasswd). 389-DS
# refuses it on plain LDAP (confidentiality required); LDAPI counts as
# secure (nsslapd-localssf), so it runs over the instance's socket.
set -eu
SOCK=${SOCK:?set SOCK to the URL-encoded path of the instance LDAPI socket}
B=dc=example,dc=com
# dave changes his own password.
ldappasswd -x -H "ldapi://$SOCK" -D "uid=dave,ou=people,$B" -w 'Dave-Initial-Pw7' -s 'Dave-Exop-Pw8'
# helpdesk sets alice2's.
ldappasswd -x -H "ldapi://$SOCK" -D "uid=helpdesk,ou=people,$B" -w 'Helpdesk-Rec-Pw1' -s 'Alice-Exop-Pw9' "uid=alice2,ou=people,$B"
