#!/bin/sh
# Enables the plugins FreeIPA also runs (Retro Changelog configured as
# FreeIPA does, MemberOf, Referential Integrity), binds loopback only.
set -eu
U=${U:-ldap://127.0.0.1:38930}
DMPW=${DMPW:?}
dsconf -D "cn=Directory Manager" -w "$DMPW" "$U" plugin retro-changelog enable
dsconf -D "cn=Directory Manager" -w "$DMPW" "$U" plugin memberof enable
dsconf -D "cn=Directory Manager" -w "$DMPW" "$U" plugin referential-integrity enable
ldapmodify -x -H "$U" -D "cn=Directory Manager" -w "$DMPW" <<'EOF'
dn: cn=Retro Changelog Plugin,cn=plugins,cn=config
changetype: modify
replace: nsslapd-attribute
nsslapd-attribute: nsuniqueid:targetUniqueId
nsslapd-attribute: isReplicated
-
replace: nsslapd-include-suffix
nsslapd-include-suffix: dc=example,dc=com
-
replace: nsslapd-changelogmaxage
nsslapd-changelogmaxage: 2d

dn: cn=config
changetype: modify
replace: nsslapd-listenhost
nsslapd-listenhost: 127.0.0.1
EOF
dsctl provtrailrec restart
