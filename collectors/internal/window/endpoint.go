package window

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// BaseURL parses a configured API endpoint. Credentials go only over
// https, except to a loopback host (the tests' httptest servers).
func BaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", raw, err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q must be a URL such as https://api.example.com", raw)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !IsLoopback(u.Hostname())) {
		return nil, fmt.Errorf("%q: credentials are sent only over https (http is allowed for loopback test servers)", raw)
	}
	return u, nil
}

// IsLoopback reports whether host names this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SameOrigin checks that link (a provider's next-page URL) points at the
// scheme and host of base, so following it cannot carry credentials
// elsewhere.
func SameOrigin(link string, base *url.URL) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("next link: %w", err)
	}
	if u.Scheme != base.Scheme || u.Host != base.Host {
		return nil, fmt.Errorf("next link points at %s://%s, not %s", u.Scheme, u.Host, base.Host)
	}
	return u, nil
}

// Secret returns a credential from, in order: the config value, a file
// (trimmed), an environment variable. what names it in errors; the value
// itself never appears in one.
func Secret(what, value, file, env string) (string, error) {
	switch {
	case value != "":
		return value, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read %s file: %w", what, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", fmt.Errorf("%s file %s is empty", what, file)
		}
		return s, nil
	case env != "":
		if s := strings.TrimSpace(os.Getenv(env)); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("no %s: set it in the config, in a file, or in $%s", what, env)
	}
	return "", fmt.Errorf("no %s configured", what)
}
