package cloudjson

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/provtrail/provtrail/event"
)

// secretKeys are JSON keys whose values are secrets in cloud audit
// records: passwords in IAM/SCIM request parameters, access key secrets,
// session tokens, service account private keys.
var secretKeys = []string{
	"password", "newpassword", "oldpassword", "secretaccesskey", "sessiontoken",
	"privatekey", "privatekeydata", "private_key", "private_key_data", "clientsecret", "client_secret",
	"secret", "secrettext", "token", "accesstoken", "refreshtoken",
}

func isSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if k == s {
			return true
		}
	}
	return false
}

// RedactRaw returns Raw(rec) with the value of every secret-named key
// replaced by event.Redacted. Records without such a key keep their bytes
// and key order.
func RedactRaw(rec []byte) string {
	lower := bytes.ToLower(rec)
	hit := false
	for _, k := range secretKeys {
		if bytes.Contains(lower, []byte(`"`+k+`"`)) {
			hit = true
			break
		}
	}
	if !hit {
		return Raw(rec)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return event.Redacted
	}
	b, err := json.Marshal(redact(v))
	if err != nil {
		return event.Redacted
	}
	return Raw(b)
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if isSecretKey(k) {
				if val != nil {
					x[k] = event.Redacted
				}
				continue
			}
			x[k] = redact(val)
		}
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
	}
	return v
}
