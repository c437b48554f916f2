// Package conn holds what both LDAP changelog collectors share: their
// common HCL attributes and checks, connecting and binding (TLS, StartTLS,
// a password from the config or a file), and reconnect backoff.
package conn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// MaxPasswordFile bounds bind_password_file.
const MaxPasswordFile = 4096

// Options says how to reach and bind to a server.
type Options struct {
	URL              string
	BindDN           string
	BindPassword     string
	BindPasswordFile string
	TLSCAFile        string
	StartTLS         bool
	// Timeout bounds dialing, StartTLS and the bind.
	Timeout time.Duration
}

// LogValue never shows the password.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", o.URL), slog.String("bind_dn", o.BindDN),
		slog.Bool("start_tls", o.StartTLS))
}

// String never shows the password.
func (o Options) String() string {
	return fmt.Sprintf("ldap %s as %q", o.URL, o.BindDN)
}

// GoString never shows the password.
func (o Options) GoString() string { return o.String() }

// password returns the bind password, reading the file each time so that a
// rotated secret is picked up on reconnect.
func (o Options) password() (string, error) {
	if o.BindPasswordFile == "" {
		return o.BindPassword, nil
	}
	f, err := os.Open(o.BindPasswordFile)
	if err != nil {
		return "", fmt.Errorf("bind_password_file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, MaxPasswordFile+1)
	n, _ := f.Read(buf)
	if n > MaxPasswordFile {
		return "", fmt.Errorf("bind_password_file %s is larger than %d bytes", o.BindPasswordFile, MaxPasswordFile)
	}
	return strings.TrimRight(string(buf[:n]), "\r\n"), nil
}

func (o Options) tlsConfig(host string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %s holds no PEM certificate", o.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Dial connects and binds. ctx bounds the dial.
func Dial(ctx context.Context, o Options) (*ldap.Conn, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	tc, err := o.tlsConfig(u.Hostname())
	if err != nil {
		return nil, err
	}
	c, err := ldap.DialURL(o.URL, ldap.DialWithDialer(&net.Dialer{Timeout: timeout}), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", o.URL, err)
	}
	c.SetTimeout(timeout)
	if o.StartTLS {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, fmt.Errorf("starttls %s: %w", o.URL, err)
		}
	}
	if o.BindDN != "" {
		pw, err := o.password()
		if err != nil {
			c.Close()
			return nil, err
		}
		if err := c.Bind(o.BindDN, pw); err != nil {
			c.Close()
			return nil, fmt.Errorf("bind to %s as %q: %w", o.URL, o.BindDN, err)
		}
	}
	// No request timeout once connected: go-ldap applies it to the whole
	// of a persistent search, and drops responses the reader has not
	// taken within it, which under backpressure would lose changes. Dead
	// peers are found by TCP keepalive (net.Dialer's default, 15s).
	c.SetTimeout(0)
	return c, nil
}

// Server returns the URL without user info, path or query: the origin
// instance events name.
func Server(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Opaque: ""}).String()
}

// Backoff is exponential reconnect backoff with jitter.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Reset returns to the minimum delay.
func (b *Backoff) Reset() { b.cur = 0 }

// Wait sleeps the next delay, or returns ctx.Err().
func (b *Backoff) Wait(ctx context.Context) error {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	d := b.cur/2 + rand.N(b.cur/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Sleep waits d or until ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IsCode reports whether err is an LDAP result with one of codes.
func IsCode(err error, codes ...uint16) bool {
	var le *ldap.Error
	if !errors.As(err, &le) {
		return false
	}
	for _, c := range codes {
		if le.ResultCode == c {
			return true
		}
	}
	return false
}

// Common is the part of the HCL block both collectors share, decoded by
// gohcl into each collector's config.
type Common struct {
	URL              string   `hcl:"url"`
	BindDN           string   `hcl:"bind_dn,optional"`
	BindPassword     string   `hcl:"bind_password,optional"`
	BindPasswordFile string   `hcl:"bind_password_file,optional"`
	BaseDN           string   `hcl:"base_dn,optional"`
	TLSCAFile        string   `hcl:"tls_ca_file,optional"`
	StartTLS         bool     `hcl:"start_tls,optional"`
	PrivilegedGroups []string `hcl:"privileged_groups,optional"`
	UserClasses      []string `hcl:"user_classes,optional"`
	GroupClasses     []string `hcl:"group_classes,optional"`
	SecretAttributes []string `hcl:"secret_attributes,optional"`
	PageSize         int      `hcl:"page_size,optional"`
	// Remain is the collector's own attributes, decoded by it.
	Remain hcl.Body `hcl:",remain"`
}

// Ranges remembers where each attribute of a block is, for diagnostics.
type Ranges struct {
	Block hcl.Range
	Attrs map[string]hcl.Range
}

// NewRanges records the attribute ranges of body (a block body without
// nested blocks).
func NewRanges(body hcl.Body) Ranges {
	r := Ranges{Attrs: map[string]hcl.Range{}}
	r.Block = body.MissingItemRange()
	if attrs, diags := body.JustAttributes(); !diags.HasErrors() {
		for name, a := range attrs {
			r.Attrs[name] = a.Range
		}
	}
	return r
}

// At returns the range of attribute name, or of the block.
func (r Ranges) At(name string) hcl.Range {
	if rg, ok := r.Attrs[name]; ok {
		return rg
	}
	return r.Block
}

// ResolvePaths makes bind_password_file and tls_ca_file relative to the
// directory of the file that sets them.
func (c *Common) ResolvePaths(r Ranges) {
	for name, p := range map[string]*string{"bind_password_file": &c.BindPasswordFile, "tls_ca_file": &c.TLSCAFile} {
		if *p == "" || filepath.IsAbs(*p) {
			continue
		}
		if rg, ok := r.Attrs[name]; ok && rg.Filename != "" {
			*p = filepath.Join(filepath.Dir(rg.Filename), *p)
		}
	}
}

// Validate checks the shared attributes.
func (c *Common) Validate(r Ranges) hcl.Diagnostics {
	var diags hcl.Diagnostics
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		diags = append(diags, hclconfig.Error(r.At("url"), "Invalid url", err.Error()))
	case u.Scheme != "ldap" && u.Scheme != "ldaps" && u.Scheme != "ldapi":
		diags = append(diags, hclconfig.Error(r.At("url"), "Invalid url",
			fmt.Sprintf("url must start with ldap://, ldaps:// or ldapi://, not %q.", u.Scheme+"://")))
	case u.Scheme != "ldapi" && u.Host == "":
		diags = append(diags, hclconfig.Error(r.At("url"), "Invalid url", "url names no host."))
	case u.User != nil:
		diags = append(diags, hclconfig.Error(r.At("url"), "Invalid url",
			"url must not carry credentials; use bind_dn and bind_password or bind_password_file."))
	case c.StartTLS && u.Scheme == "ldaps":
		diags = append(diags, hclconfig.Error(r.At("start_tls"), "Invalid start_tls", "start_tls cannot be used with ldaps://."))
	}
	if c.BindPassword != "" && c.BindPasswordFile != "" {
		diags = append(diags, hclconfig.Error(r.At("bind_password_file"), "Conflicting attributes",
			"Set bind_password or bind_password_file, not both."))
	}
	if c.BindDN != "" {
		if _, err := ldap.ParseDN(c.BindDN); err != nil {
			diags = append(diags, hclconfig.Error(r.At("bind_dn"), "Invalid bind_dn", err.Error()))
		}
		if c.BindPassword == "" && c.BindPasswordFile == "" {
			diags = append(diags, hclconfig.Error(r.At("bind_dn"), "Missing password",
				"bind_dn needs bind_password or bind_password_file."))
		}
	} else if c.BindPassword != "" || c.BindPasswordFile != "" {
		diags = append(diags, hclconfig.Error(r.At("bind_dn"), "Missing bind_dn", "A bind password needs bind_dn."))
	}
	if c.BindPasswordFile != "" {
		if fi, err := os.Stat(c.BindPasswordFile); err != nil {
			diags = append(diags, hclconfig.Error(r.At("bind_password_file"), "Invalid bind_password_file", err.Error()))
		} else if fi.Mode().Perm()&0o004 != 0 {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "World-readable bind_password_file",
				Detail: fmt.Sprintf("%s can be read by every user; chmod 0600 it.", c.BindPasswordFile), Subject: r.At("bind_password_file").Ptr()})
		}
	}
	if c.BaseDN != "" {
		if _, err := ldap.ParseDN(c.BaseDN); err != nil {
			diags = append(diags, hclconfig.Error(r.At("base_dn"), "Invalid base_dn", err.Error()))
		}
	}
	if c.TLSCAFile != "" {
		if _, err := os.Stat(c.TLSCAFile); err != nil {
			diags = append(diags, hclconfig.Error(r.At("tls_ca_file"), "Invalid tls_ca_file", err.Error()))
		}
	}
	for _, g := range c.PrivilegedGroups {
		if _, err := ldap.ParseDN(g); err != nil || strings.TrimSpace(g) == "" {
			diags = append(diags, hclconfig.Error(r.At("privileged_groups"), "Invalid privileged group",
				fmt.Sprintf("%q is not a DN.", g)))
		}
	}
	if c.PageSize < 0 || c.PageSize > 100000 {
		diags = append(diags, hclconfig.Error(r.At("page_size"), "Invalid page_size", "page_size must be between 1 and 100000."))
	}
	return diags
}

// Options returns the connection options.
func (c *Common) Options() Options {
	return Options{URL: c.URL, BindDN: c.BindDN, BindPassword: c.BindPassword,
		BindPasswordFile: c.BindPasswordFile, TLSCAFile: c.TLSCAFile, StartTLS: c.StartTLS}
}
