// Package testenv starts real servers for tests: each on 127.0.0.1, in
// t.TempDir(), stopped in t.Cleanup. When a server's binary is missing the
// test is skipped, unless PROVTRAIL_TESTENV_REQUIRED=1 (CI sets it), in which
// case it fails.
package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Slapd binaries and paths of Debian's slapd package.
const (
	SlapdBin       = "/usr/sbin/slapd"
	SlapaddBin     = "/usr/sbin/slapadd"
	SlapdModules   = "/usr/lib/ldap"
	SlapdSchemaDir = "/etc/ldap/schema"
)

// Well-known identities of the test directory.
const (
	SlapdSuffix      = "dc=example,dc=com"
	SlapdAdminDN     = "cn=admin,dc=example,dc=com"
	SlapdAdminPW     = "secret"
	SlapdReaderDN    = "cn=auditreader,dc=example,dc=com"
	SlapdReaderPW    = "auditsecret"
	SlapdConfigDN    = "cn=admin,cn=config"
	SlapdConfigPW    = "configsecret"
	SlapdAccesslogDN = "cn=accesslog"
)

// SlapdOptions shapes the test server.
type SlapdOptions struct {
	// NoLogSyncprov leaves syncprov off the accesslog database, so that a
	// Sync Request on cn=accesslog is refused (the polling fallback).
	NoLogSyncprov bool
	// LogPurge is olcAccessLogPurge ("07+00:00 01+00:00" when empty).
	LogPurge string
	// ExtraSchema is LDIF (cn=schema,cn=config children) loaded after the
	// standard schemas.
	ExtraSchema string
	// ExtraDatabases is LDIF of further olcDatabase entries, numbered from
	// {3}; @DIR@ is replaced by the instance directory.
	ExtraDatabases string
	// ExtraDirs are created under the instance directory (for
	// ExtraDatabases' olcDbDirectory).
	ExtraDirs []string
	// TLS gives the server a certificate for 127.0.0.1 from a fresh test
	// CA (CAFile), StartTLS on URL and an ldaps:// listener (LDAPSURL).
	TLS bool
	// RootDSE is the content of an LDIF file of extra root DSE attributes
	// (olcRootDSE); the file can be rewritten with WriteRootDSE before a
	// Restart. Attribute types it uses that the standard schemas lack go
	// in ExtraSchema.
	RootDSE string
}

// Slapd is a running OpenLDAP server with a cn=accesslog database (the
// accesslog overlay logs every write, failures included, with old values of
// modified attributes and objectClass) and the audited dc=example,dc=com
// database, both with syncprov, and ppolicy on the audited database (no
// default policy, so cleartext passwords are stored and logged as sent).
type Slapd struct {
	// URL is ldap://127.0.0.1:PORT.
	URL  string
	Dir  string
	Port int
	// With SlapdOptions.TLS: LDAPSURL is ldaps://127.0.0.1:PORT2 and
	// CAFile the PEM of the CA that signed the server's certificate.
	LDAPSURL string
	CAFile   string

	t      testing.TB
	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	log    *lockedBuffer
	asUser *user.User
}

// need skips or fails t when slapd is not installed.
func need(t testing.TB, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			if os.Getenv("PROVTRAIL_TESTENV_REQUIRED") == "1" {
				t.Fatalf("%s is required (PROVTRAIL_TESTENV_REQUIRED=1): %v", b, err)
			}
			t.Skipf("%s not installed: %v", b, err)
		}
	}
}

// StartSlapd configures and starts slapd in a fresh directory, and stops it
// when the test ends.
func StartSlapd(t testing.TB, opt SlapdOptions) *Slapd {
	t.Helper()
	need(t, SlapdBin, SlapaddBin)
	dir := t.TempDir()
	for _, d := range append([]string{"slapd.d", "accesslog", "data", "extra"}, opt.ExtraDirs...) {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &Slapd{Dir: dir, t: t}
	if opt.RootDSE != "" {
		s.WriteRootDSE(opt.RootDSE)
	}
	tlsAttrs := ""
	if opt.TLS {
		s.CAFile = writeTestCA(t, dir)
		tlsAttrs = "olcTLSCACertificateFile: " + s.CAFile + "\nolcTLSCertificateFile: " + filepath.Join(dir, "server.pem") +
			"\nolcTLSCertificateKeyFile: " + filepath.Join(dir, "server.key") + "\n"
	}
	cfg := strings.Replace(slapdConfig(dir, opt), "olcLogLevel: none\n", "olcLogLevel: none\n"+tlsAttrs, 1)
	cfgPath := filepath.Join(dir, "config.ldif")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(SlapaddBin, "-n0", "-F", filepath.Join(dir, "slapd.d"), "-l", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("slapadd cn=config: %v\n%s", err, out)
	}
	base := `dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: cn=auditreader,dc=example,dc=com
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: auditreader
userPassword: ` + SlapdReaderPW + "\n"
	basePath := filepath.Join(dir, "base.ldif")
	if err := os.WriteFile(basePath, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	// Loaded offline, so the base entries are not in the accesslog.
	out, err = exec.Command(SlapaddBin, "-F", filepath.Join(dir, "slapd.d"), "-b", SlapdSuffix, "-l", basePath).CombinedOutput()
	if err != nil {
		t.Fatalf("slapadd base: %v\n%s", err, out)
	}
	// As root, run slapd as Debian's openldap user so that the test covers
	// the unprivileged setup production uses.
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("openldap"); err == nil {
			s.asUser = u
			chownTree(t, dir, u)
		}
	}
	s.Port = freePort(t)
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.Port)
	if opt.TLS {
		s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", freePort(t))
	}
	s.Start()
	t.Cleanup(func() { s.Stop() })
	if opt.RootDSE != "" {
		// Set at run time: in cn=config's own entry the file would be
		// read before the schema that defines its attributes. From
		// slapd.d, later starts read it in the right order.
		c, err := ldap.DialURL(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Bind(SlapdConfigDN, SlapdConfigPW); err != nil {
			t.Fatal(err)
		}
		m := ldap.NewModifyRequest("cn=config", nil)
		m.Add("olcRootDSE", []string{filepath.Join(dir, "extra", "rootdse.ldif")})
		if err := c.Modify(m); err != nil {
			t.Fatalf("set olcRootDSE: %v", err)
		}
	}
	return s
}

// WriteRootDSE replaces the extra root DSE attributes; slapd reads the file
// when it starts.
func (s *Slapd) WriteRootDSE(ldif string) {
	s.t.Helper()
	p := filepath.Join(s.Dir, "extra", "rootdse.ldif")
	if err := os.WriteFile(p, []byte(ldif), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func chownTree(t testing.TB, dir string, u *user.User) {
	t.Helper()
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("chown %s: %v", dir, err)
	}
	// t.TempDir's parents are 0700: let the server user traverse them.
	for p := filepath.Dir(dir); p != "/" && p != "." && strings.HasPrefix(p, os.TempDir()) && p != os.TempDir(); p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			_ = os.Chmod(p, fi.Mode().Perm()|0o011)
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts the server (again, after Stop or Kill) on the same port and
// data, and waits until it accepts connections.
func (s *Slapd) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("slapd already running")
	}
	urls := s.URL
	if s.LDAPSURL != "" {
		urls += " " + s.LDAPSURL
	}
	args := []string{"-d", "0", "-h", urls, "-F", filepath.Join(s.Dir, "slapd.d")}
	if s.asUser != nil {
		args = append(args, "-u", s.asUser.Username, "-g", "openldap")
	}
	cmd := exec.Command(SlapdBin, args...)
	s.log = &lockedBuffer{}
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start slapd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			s.cmd = nil
			s.t.Fatalf("slapd exited at start: %s", s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("slapd did not listen on %s: %s", s.URL, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down cleanly (SIGINT) and waits for it.
func (s *Slapd) Stop() { s.signal(syscall.SIGINT) }

// Kill ends the server with SIGKILL, as a crash would.
func (s *Slapd) Kill() { s.signal(syscall.SIGKILL) }

// Restart stops and starts the server.
func (s *Slapd) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

func (s *Slapd) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func slapdConfig(dir string, opt SlapdOptions) string {
	purge := opt.LogPurge
	if purge == "" {
		purge = "07+00:00 01+00:00"
	}
	logSyncprov := `
dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
olcSpNoPresent: TRUE
olcSpReloadHint: TRUE
`
	if opt.NoLogSyncprov {
		logSyncprov = ""
	}
	cfg := `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: @DIR@/slapd.pid
olcArgsFile: @DIR@/slapd.args
olcLogLevel: none

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: ` + SlapdModules + `
olcModuleLoad: {0}back_mdb
olcModuleLoad: {1}accesslog
olcModuleLoad: {2}syncprov
olcModuleLoad: {3}ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://` + SlapdSchemaDir + `/core.ldif

include: file://` + SlapdSchemaDir + `/cosine.ldif

include: file://` + SlapdSchemaDir + `/nis.ldif

include: file://` + SlapdSchemaDir + `/inetorgperson.ldif
` + opt.ExtraSchema + `
dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: ` + SlapdConfigDN + `
olcRootPW: ` + SlapdConfigPW + `

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: cn=accesslog
olcDbDirectory: @DIR@/accesslog
olcDbMaxSize: 1073741824
olcDbNoSync: TRUE
olcRootDN: ` + SlapdAdminDN + `
olcDbIndex: default eq
olcDbIndex: objectClass,entryCSN,reqStart,reqEnd,reqResult,reqDN,reqType
olcAccess: {0}to * by dn.exact="` + SlapdReaderDN + `" read by * none
olcLimits: {0}dn.exact="` + SlapdReaderDN + `" size=unlimited time=unlimited
` + logSyncprov + `
dn: olcDatabase={2}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {2}mdb
olcSuffix: ` + SlapdSuffix + `
olcDbDirectory: @DIR@/data
olcDbMaxSize: 1073741824
olcDbNoSync: TRUE
olcRootDN: ` + SlapdAdminDN + `
olcRootPW: ` + SlapdAdminPW + `
olcDbIndex: objectClass,uid,cn,member,memberUid,entryUUID,entryCSN eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by self write by users read by * none
olcLimits: {0}dn.exact="` + SlapdReaderDN + `" size=unlimited time=unlimited

dn: olcOverlay={0}accesslog,olcDatabase={2}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcAccessLogConfig
olcOverlay: {0}accesslog
olcAccessLogDB: cn=accesslog
olcAccessLogOps: writes
olcAccessLogSuccess: FALSE
olcAccessLogPurge: ` + purge + `
olcAccessLogOld: (objectClass=*)
olcAccessLogOldAttr: objectClass

dn: olcOverlay={1}syncprov,olcDatabase={2}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {1}syncprov

dn: olcOverlay={2}ppolicy,olcDatabase={2}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {2}ppolicy
` + opt.ExtraDatabases
	return strings.ReplaceAll(cfg, "@DIR@", dir)
}

// Log returns what slapd printed so far (for failure messages).
func (s *Slapd) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// writeTestCA makes a CA and a server certificate for 127.0.0.1 in dir
// (ca.pem, server.pem, server.key) and returns the CA file.
func writeTestCA(t testing.TB, dir string) string {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "provtrail test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", der)
	write("server.key", "PRIVATE KEY", keyDER)
	return filepath.Join(dir, "ca.pem")
}

// lockedBuffer is a bytes.Buffer safe for the exec copier and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
