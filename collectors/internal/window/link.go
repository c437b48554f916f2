package window

import "strings"

// NextLink returns the rel="next" URL of RFC 8288 Link headers (Okta,
// GitHub), or "".
func NextLink(headers []string) string {
	for _, h := range headers {
		for _, part := range strings.Split(h, ",") {
			part = strings.TrimSpace(part)
			end := strings.Index(part, ">")
			if !strings.HasPrefix(part, "<") || end < 0 {
				continue
			}
			for _, param := range strings.Split(part[end+1:], ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(param), "=")
				if strings.EqualFold(k, "rel") && strings.Trim(v, `"`) == "next" {
					return part[1:end]
				}
			}
		}
	}
	return ""
}
