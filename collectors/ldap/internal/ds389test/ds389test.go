// Package ds389test starts a throwaway 389 Directory Server for the tests
// that opt in with PROVTRAIL_389DS=1. It is never needed in CI: 389-DS is
// heavy (dscreate runs as root, pulls in systemd and python3-lib389, and
// takes seconds), so routine tests use entries recorded from it instead.
//
// The instance lives under t.TempDir() in a PREFIX tree whose copy of
// defaults.inf turns systemd off and moves every path under the prefix
// (dscreate otherwise insists on systemctl), listens on high ports (on
// every interface from dscreate until the restart that applies
// nsslapd-listenhost, on 127.0.0.1 only after it), and is stopped and
// removed in t.Cleanup.
package ds389test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Paths of Debian's 389-ds-base package.
const (
	DSCreate    = "/usr/sbin/dscreate"
	DSCtl       = "/usr/sbin/dsctl"
	NSSlapd     = "/usr/sbin/ns-slapd"
	DefaultsInf = "/usr/share/dirsrv/inf/defaults.inf"
	ConfigDir   = "/etc/dirsrv"
)

// Identities of the test instance.
const (
	RootDN   = "cn=Directory Manager"
	RootPW   = "ds389test-throwaway-Pw"
	Suffix   = "dc=example,dc=com"
	Instance = "provtrailtest"
)

// Server is a running test instance.
type Server struct {
	URL    string
	prefix string
	t      testing.TB
}

// Start creates and starts an instance with the Retro Changelog plugin
// enabled (configured as FreeIPA does), or skips the test: without
// PROVTRAIL_389DS=1, without the binaries, or when not root.
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Getenv("PROVTRAIL_389DS") != "1" {
		t.Skip("set PROVTRAIL_389DS=1 to run against a real 389-DS (needs root and Debian's 389-ds-base)")
	}
	for _, b := range []string{DSCreate, DSCtl, NSSlapd, DefaultsInf} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("389-DS not installed: %v", err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("dscreate must run as root")
	}
	ds, err := user.Lookup("dirsrv")
	if err != nil {
		t.Skipf("no dirsrv user: %v", err)
	}
	uid, _ := strconv.Atoi(ds.Uid)
	gid, _ := strconv.Atoi(ds.Gid)

	dir := t.TempDir()
	// ns-slapd runs as dirsrv: it must reach the prefix.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "prefix")
	owned := []string{"run/dirsrv", "run/lock/dirsrv", "var/log/dirsrv", "var/lib/dirsrv", "tmp", "dev/shm"}
	for _, d := range append([]string{"share/dirsrv/inf", "etc/dirsrv", "etc/default", "etc/tmpfiles.d"}, owned...) {
		if err := os.MkdirAll(filepath.Join(p, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"config", "schema"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(ConfigDir, d), filepath.Join(p, "etc/dirsrv")).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v: %s", d, err, out)
		}
	}
	defaults, err := os.ReadFile(DefaultsInf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "share/dirsrv/inf/defaults.inf"), prefixDefaults(defaults, p), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"run", "var", "tmp", "dev"} {
		err := filepath.Walk(filepath.Join(p, d), func(path string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, uid, gid)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	port, securePort := freePort(t), freePort(t)
	inf := fmt.Sprintf(`[general]
config_version = 2
full_machine_name = localhost
selinux = False
systemd = False
start = True
strict_host_checking = False
[slapd]
instance_name = %s
port = %d
secure_port = %d
self_sign_cert = False
root_dn = %s
root_password = %s
user = dirsrv
group = dirsrv
db_lib = bdb
[backend-userroot]
suffix = %s
create_suffix_entry = True
sample_entries = no
`, Instance, port, securePort, RootDN, RootPW, Suffix)
	infPath := filepath.Join(dir, "instance.inf")
	if err := os.WriteFile(infPath, []byte(inf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: fmt.Sprintf("ldap://127.0.0.1:%d", port), prefix: p, t: t}
	t.Cleanup(s.remove)
	s.run(5*time.Minute, DSCreate, "from-file", infPath)

	c := s.Conn()
	defer c.Close()
	for _, m := range []*ldap.ModifyRequest{
		modify("cn=Retro Changelog Plugin,cn=plugins,cn=config", map[string][]string{
			"nsslapd-pluginEnabled":   {"on"},
			"nsslapd-attribute":       {"nsuniqueid:targetUniqueId", "isReplicated"},
			"nsslapd-include-suffix":  {Suffix},
			"nsslapd-changelogmaxage": {"2d"},
		}),
		modify("cn=config", map[string][]string{"nsslapd-listenhost": {"127.0.0.1"}}),
	} {
		if err := c.Modify(m); err != nil {
			t.Fatalf("configure %s: %v", m.DN, err)
		}
	}
	s.Restart()
	return s
}

func modify(dn string, attrs map[string][]string) *ldap.ModifyRequest {
	m := ldap.NewModifyRequest(dn, nil)
	for a, v := range attrs {
		m.Replace(a, v)
	}
	return m
}

// prefixDefaults rewrites defaults.inf so that every path is under p and
// systemd is off.
func prefixDefaults(in []byte, p string) []byte {
	var out []string
	for _, l := range strings.Split(string(in), "\n") {
		k, v, ok := strings.Cut(l, " = ")
		switch {
		case !ok:
		case k == "with_systemd":
			v = "0"
		default:
			for _, root := range []string{"/etc", "/run", "/var", "/tmp", "/dev/shm"} {
				if v == root || strings.HasPrefix(v, root+"/") {
					v = p + v
					break
				}
			}
		}
		if ok {
			l = k + " = " + v
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run runs a 389-DS tool with the prefix.
func (s *Server) run(timeout time.Duration, args ...string) {
	s.t.Helper()
	if err := s.try(timeout, args...); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) try(timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PREFIX="+s.prefix)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}

// Conn returns a connection bound as the Directory Manager.
func (s *Server) Conn() *ldap.Conn {
	s.t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.Bind(RootDN, RootPW); err != nil {
		c.Close()
		s.t.Fatal(err)
	}
	return c
}

// Restart restarts the instance (the Retro Changelog plugin needs it).
func (s *Server) Restart() { s.run(2*time.Minute, DSCtl, Instance, "restart") }

func (s *Server) pid() int {
	b, err := os.ReadFile(filepath.Join(s.prefix, "run/dirsrv/slapd-"+Instance+".pid"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// remove stops the instance (by its pid if dsctl fails) and removes it.
func (s *Server) remove() {
	if err := s.try(time.Minute, DSCtl, Instance, "stop"); err != nil {
		s.t.Log(err)
		if pid := s.pid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := s.try(time.Minute, DSCtl, Instance, "remove", "--do-it"); err != nil {
		s.t.Log(err)
	}
}
