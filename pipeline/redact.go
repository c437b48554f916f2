package pipeline

import (
	"regexp"
	"strings"

	"github.com/provtrail/provtrail/event"
)

// Redaction is defence in depth: collectors already replace secrets with
// event.Redacted, and this stage catches what slipped through before an
// event is spooled, sent or logged. It looks for the shapes secrets take in
// provisioning sources: crypt(3) hashes, LDAP {SCHEME} password values,
// name=value pairs whose name says "password", "secret" or "token", bearer
// tokens, PEM private keys; and it blanks the old and new values of changed
// fields whose name says they hold a secret.

var (
	reCrypt  = regexp.MustCompile(`\$(?:1|2a|2b|2x|2y|5|6|7|y|gy|sha1|md5|argon2id|argon2i|pbkdf2-sha256|pbkdf2-sha512)\$[A-Za-z0-9./+=$,-]{4,}`)
	reLDAP   = regexp.MustCompile(`(?i)\{(?:SSHA|SSHA256|SSHA384|SSHA512|SHA|SHA256|SHA384|SHA512|MD5|SMD5|CRYPT|PBKDF2[A-Z0-9_-]*|ARGON2|CLEARTEXT|BCRYPT)\}[A-Za-z0-9+/=$.,:_-]*`)
	reKV     = regexp.MustCompile(`(?i)((?:^|[^A-Za-z0-9])(?:password|passwd|passphrase|pwd|userpassword|unicodepwd|secret|client_secret|token|access_token|refresh_token|api_?key|access_?key|secret_?key|private_?key)(?:"\s*:\s*|\s*=\s*|\s*::?\s+))("[^"]*"|'[^']*'|[^\s,;&"']+)`)
	reBearer = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}`)
	rePEM    = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`)
)

// RedactString replaces every secret-looking value in s with
// event.Redacted and reports how many it replaced. Cheap checks decide
// which patterns can match at all, so an ordinary log line costs no
// regular-expression work.
func RedactString(s string) (string, int) {
	if s == "" || s == event.Redacted {
		return s, 0
	}
	n := 0
	if strings.Contains(s, "PRIVATE KEY") {
		s = rePEM.ReplaceAllStringFunc(s, func(string) string { n++; return event.Redacted })
	}
	if strings.IndexByte(s, '$') >= 0 {
		s = reCrypt.ReplaceAllStringFunc(s, func(string) string { n++; return event.Redacted })
	}
	if strings.IndexByte(s, '{') >= 0 {
		s = reLDAP.ReplaceAllStringFunc(s, func(string) string { n++; return event.Redacted })
	}
	// Case-insensitive patterns also match non-ASCII case folds (the
	// Kelvin sign for k): only pure ASCII takes the short cut.
	ascii := isASCII(s)
	if ascii && !containsFold(s, allKeywords) {
		return s, n
	}
	if !ascii || containsFold(s, bearerKeywords) {
		s = reBearer.ReplaceAllStringFunc(s, func(m string) string {
			n++
			return m[:strings.IndexAny(m, " \t")+1] + event.Redacted
		})
	}
	if !ascii || strings.ContainsAny(s, "=:") && containsFold(s, kvKeywords) {
		s = reKV.ReplaceAllStringFunc(s, func(m string) string {
			sub := reKV.FindStringSubmatch(m)
			if sub[2] == event.Redacted || strings.Trim(sub[2], `"'`) == event.Redacted {
				return m
			}
			n++
			return sub[1] + event.Redacted
		})
	}
	return s, n
}

// kvKeywords are substrings every name reKV matches contains one of;
// bearerKeywords the words reBearer starts with. All lower case ASCII.
var (
	kvKeywords     = newKeywords("pass", "pwd", "secret", "token", "key")
	bearerKeywords = newKeywords("bearer", "basic")
	allKeywords    = newKeywords("pass", "pwd", "secret", "token", "key", "bearer", "basic")
)

// keywords is a set of lower-case ASCII words with a table of their first
// letters, for a quick scan.
type keywords struct {
	first [256]bool
	words []string
}

func newKeywords(words ...string) *keywords {
	k := &keywords{words: words}
	for _, w := range words {
		k.first[w[0]] = true
	}
	return k
}

// containsFold reports whether the ASCII string s contains one of the
// words, ignoring case, without allocating.
func containsFold(s string, k *keywords) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !k.first[c] {
			continue
		}
		for _, w := range k.words {
			if c != w[0] || len(s)-i < len(w) {
				continue
			}
			j := 1
			for j < len(w) && s[i+j]|0x20 == w[j] {
				j++
			}
			if j == len(w) {
				return true
			}
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// Change fields whose name contains one of secretFieldWords hold secrets,
// unless the name also contains one of notSecretFieldWords: those only
// describe a secret (when it changed, its type, its policy) and keep their
// values.
var (
	secretFieldWords    = []string{"password", "passwd", "passphrase", "pwd", "secret", "token", "privatekey", "private_key", "credential_value", "hash"}
	notSecretFieldWords = []string{"time", "date", "last", "age", "expir", "changed", "min", "max", "warn", "inactiv", "status", "type", "policy", "count", "length", "algorithm", "scheme", "must", "never", "required"}
)

// secretField reports whether a change field holds a secret value.
func secretField(name string) bool {
	l := strings.ToLower(name)
	return containsAny(l, secretFieldWords) && !containsAny(l, notSecretFieldWords)
}

// Redact replaces secrets in e in place and returns how many values it
// replaced.
func Redact(e *event.Event) int {
	n := 0
	red := func(p *string) {
		var k int
		*p, k = RedactString(*p)
		n += k
	}
	red(&e.Raw)
	for i := range e.Changes {
		c := &e.Changes[i]
		if secretField(c.Field) {
			for _, v := range []*string{&c.Old, &c.New} {
				if *v != "" && *v != event.Redacted {
					*v = event.Redacted
					n++
				}
			}
			continue
		}
		red(&c.Old)
		red(&c.New)
	}
	red(&e.Origin.UserAgent)
	red(&e.Source.Cursor)
	return n
}
