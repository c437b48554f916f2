package norm

import (
	"strings"
	"unicode/utf8"

	"github.com/provtrail/provtrail/event"
)

// DefaultSecretAttrs are attributes whose values are secrets (passwords,
// password hashes, key material) in OpenLDAP, 389-DS, FreeIPA, Samba and
// Active Directory schemas. Matching is case-insensitive, ignores
// attribute options, and also accepts the OID forms listed in secretOIDs.
var DefaultSecretAttrs = []string{
	"userPassword", "authPassword", "unhashed#user#password", "pwdHistory",
	"sambaNTPassword", "sambaLMPassword", "sambaPasswordHistory",
	"krbPrincipalKey", "krbExtraData", "krbMKey", "ipaNTHash", "ipaNTSecurityIdentifierHistory",
	"userPKCS12", "unicodePwd", "clearTextPassword", "nsSymmetricKey",
	"ntPwdHistory", "lmPwdHistory", "dBCSPwd", "supplementalCredentials",
	"passwordHistory", "userPrivateKey", "nsslapd-rootpw", "olcRootPW",
	"ipaOTPKey", "ipaSecretKey", "ipaPrivateKey",
}

// secretOIDs maps the numeric forms of the best-known secret attributes to
// their names.
var secretOIDs = map[string]string{
	"2.5.4.35":                   "userpassword",
	"1.3.6.1.4.1.4203.1.3.4":     "authpassword",
	"1.3.6.1.4.1.42.2.27.8.1.20": "pwdhistory",
	"1.3.6.1.4.1.7165.2.1.24":    "sambalmpassword",
	"1.3.6.1.4.1.7165.2.1.25":    "sambantpassword",
	"1.2.840.113556.1.4.90":      "unicodepwd",
	"2.16.840.1.113730.3.1.216":  "userpkcs12",
}

// BaseName returns an attribute description's type, lower-cased, without
// options, with well-known OIDs mapped to names ("2.5.4.35;binary" →
// "userpassword").
func BaseName(desc string) string {
	if n, ok := knownNames[desc]; ok {
		return n
	}
	if i := strings.IndexByte(desc, ';'); i >= 0 {
		desc = desc[:i]
	}
	if !plainLower(desc) {
		desc = strings.ToLower(strings.TrimSpace(desc))
		desc = strings.TrimPrefix(desc, "oid.")
	}
	if n, ok := secretOIDs[desc]; ok {
		return n
	}
	return desc
}

// knownNames maps the usual spellings of the attributes every change
// carries to their base names, sparing an allocation per value. It is
// built once and only read.
var knownNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"objectClass", "reqStart", "reqEnd", "reqType", "reqSession", "reqAuthzID",
		"reqDN", "reqResult", "reqMessage", "reqMod", "reqOld", "reqNewRDN", "reqDeleteOldRDN", "reqNewSuperior",
		"reqNewDN", "reqEntryUUID", "reqControls", "entryCSN", "entryUUID", "creatorsName", "createTimestamp",
		"modifiersName", "modifyTimestamp", "structuralObjectClass", "member", "uniqueMember", "memberUid",
		"userPassword", "pwdChangedTime", "pwdAccountLockedTime", "pwdReset", "pwdHistory", "nsAccountLock",
		"uid", "cn", "sn", "mail", "uidNumber", "gidNumber", "homeDirectory", "loginShell", "description",
		"changeNumber", "targetDn", "changeTime", "changeType", "changes", "newRdn", "deleteOldRdn",
		"newSuperior", "modifiersname", "modifytimestamp", "creatorsname", "createtimestamp"} {
		m[n] = strings.ToLower(n)
	}
	return m
}()

// plainLower reports whether s needs no lower-casing or trimming (the
// common case, checked without allocating).
func plainLower(s string) bool {
	if s == "" || strings.HasPrefix(s, "oid.") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c == ' ' || c >= 0x80 {
			return false
		}
	}
	return true
}

// Secrets decides which attributes carry secrets.
type Secrets struct {
	names map[string]bool
}

// NewSecrets returns the default secret attributes plus extra.
func NewSecrets(extra []string) *Secrets {
	s := &Secrets{names: map[string]bool{}}
	for _, a := range DefaultSecretAttrs {
		s.names[BaseName(a)] = true
	}
	for _, a := range extra {
		s.names[BaseName(a)] = true
	}
	return s
}

// IsSecret reports whether values of the attribute description desc are
// secrets.
func (s *Secrets) IsSecret(desc string) bool { return s.names[BaseName(desc)] }

// MaxRawValue caps each value shown in an event's Raw.
const MaxRawValue = 1024

// RawValue renders one value for an event's Raw, LDIF style: "name: value",
// with Redacted for secret attributes and for anything that looks like a
// password hash, base64 for values LDIF would not print as text, and
// values longer than MaxRawValue cut with a note of their size.
func (s *Secrets) RawValue(name string, v []byte) string {
	if s.IsSecret(name) || LooksLikeHash(string(v)) {
		return name + ": " + event.Redacted
	}
	return RawLine(name, v)
}

// RawLine renders name and a non-secret value.
func RawLine(name string, v []byte) string {
	cut := ""
	if len(v) > MaxRawValue {
		cut = " [" + itoa(len(v)) + " bytes, cut]"
		v = v[:MaxRawValue]
	}
	if safeText(v) {
		if len(v) == 0 {
			return name + ":" + cut
		}
		return name + ": " + string(v) + cut
	}
	return name + ":: " + b64(v) + cut
}

func safeText(v []byte) bool {
	if len(v) == 0 {
		return true
	}
	if v[0] == ' ' || v[0] == ':' || v[0] == '<' || v[len(v)-1] == ' ' {
		return false
	}
	if !utf8.Valid(v) {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// LooksLikeHash catches crypt(3) hashes ($id$...$...) and LDAP {SCHEME}
// values: secrets that may appear under an attribute nobody listed.
func LooksLikeHash(s string) bool {
	if len(s) < 4 {
		return false
	}
	for _, p := range []string{"$y$", "$6$", "$5$", "$2b$", "$2y$", "$2a$", "$1$", "$7$", "$gy$", "$sha1$", "$argon2"} {
		if i := strings.Index(s, p); i >= 0 && strings.Count(s[i:], "$") >= 3 {
			return true
		}
	}
	if i := strings.IndexByte(s, '{'); i >= 0 {
		u := strings.ToUpper(s[i:])
		for _, p := range []string{"{SSHA", "{SHA", "{CRYPT}", "{PBKDF2", "{ARGON2", "{MD5}", "{SMD5}", "{BCRYPT}", "{NS-MTA-MD5}", "{CLEAR}", "{GOST", "{SASL}", "{K5KEY}"} {
			if strings.Contains(u, p) {
				return true
			}
		}
	}
	return false
}
