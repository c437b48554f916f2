package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// TestSlapdStartsAndLogs checks the helper's server: the reader can bind,
// a write by the admin lands in cn=accesslog, and the data survive a
// restart on the same port.
func TestSlapdStartsAndLogs(t *testing.T) {
	s := StartSlapd(t, SlapdOptions{})
	write := func() {
		c, err := ldap.DialURL(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Bind(SlapdAdminDN, SlapdAdminPW); err != nil {
			t.Fatal(err)
		}
		req := ldap.NewModifyRequest("ou=people,"+SlapdSuffix, nil)
		req.Replace("description", []string{"touched"})
		if err := c.Modify(req); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		c, err := ldap.DialURL(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Bind(SlapdReaderDN, SlapdReaderPW); err != nil {
			t.Fatal(err)
		}
		res, err := c.Search(ldap.NewSearchRequest(SlapdAccesslogDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=auditWriteObject)", []string{"reqDN"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Entries)
	}
	write()
	if n := count(); n != 1 {
		t.Fatalf("accesslog has %d write entries, want 1", n)
	}
	s.Restart()
	write()
	if n := count(); n != 2 {
		t.Fatalf("after restart accesslog has %d write entries, want 2", n)
	}
}

// TestSlapdTLS: the TLS variant answers StartTLS and ldaps with a
// certificate the test CA verifies.
func TestSlapdTLS(t *testing.T) {
	s := StartSlapd(t, SlapdOptions{TLS: true})
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(s.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("CA: %v", err)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(tc); err != nil {
		t.Fatalf("starttls: %v", err)
	}
	if err := c.Bind(SlapdReaderDN, SlapdReaderPW); err != nil {
		t.Fatal(err)
	}
	c2, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(tc))
	if err != nil {
		t.Fatalf("ldaps: %v", err)
	}
	defer c2.Close()
	if err := c2.Bind(SlapdReaderDN, SlapdReaderPW); err != nil {
		t.Fatal(err)
	}
}
