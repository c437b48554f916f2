package conn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServer(t *testing.T) {
	for in, want := range map[string]string{
		"ldap://127.0.0.1:389":            "ldap://127.0.0.1:389",
		"ldaps://ldap.example.com/dc=x?a": "ldaps://ldap.example.com",
	} {
		if got := Server(in); got != want {
			t.Errorf("Server(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("s3cret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{BindPasswordFile: p}
	if pw, err := o.password(); err != nil || pw != "s3cret" {
		t.Fatalf("password %q, %v", pw, err)
	}
	if err := os.WriteFile(p, []byte(strings.Repeat("x", MaxPasswordFile+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := o.password(); err == nil {
		t.Fatal("oversized password file accepted")
	}
	if s := (Options{URL: "ldap://x", BindDN: "cn=a", BindPassword: "hunter2"}).String(); strings.Contains(s, "hunter2") {
		t.Fatalf("String shows the password: %s", s)
	}
}

func TestDialRefused(t *testing.T) {
	// A closed port on loopback: the error names the server, never hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, Options{URL: "ldap://127.0.0.1:1", BindDN: "cn=a", BindPassword: "hunter2"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Millisecond, Max: 4 * time.Millisecond}
	start := time.Now()
	for range 5 {
		if err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if b.cur != 4*time.Millisecond {
		t.Fatalf("backoff did not cap: %v", b.cur)
	}
	if time.Since(start) > time.Second {
		t.Fatal("backoff too slow")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b = Backoff{Min: time.Hour, Max: time.Hour}
	if err := b.Wait(ctx); err == nil {
		t.Fatal("Wait ignored ctx")
	}
}
