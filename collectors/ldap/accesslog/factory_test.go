package accesslog

import (
	"context"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/ldap/internal/ldaptest"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	if _, err := collectors.NewRegistry(f); err != nil {
		t.Fatal(err)
	}
	file, diags := hclconfig.ParseBytes("agent.hcl", []byte("url = \"ldap://127.0.0.1:1\"\nbind_dn = \"cn=r\"\nbind_password = \"p\"\n"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, diags := f.DecodeConfig(file.Body, hclconfig.EvalContext(".", nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c, err := f.New(collectors.Settings{Type: Type, Name: "x"}, cfg)
	if err != nil || c == nil {
		t.Fatalf("New: %v", err)
	}
	// Run against a closed port: it retries until cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Run(ctx, nil, &ldaptest.Sink{}); err == nil {
		t.Fatal("Run returned nil after cancel")
	}
	p, err := f.NewParser(collectors.Settings{Name: "stdin"})
	if err != nil {
		t.Fatal(err)
	}
	var s ldaptest.Sink
	in := "dn: reqStart=20260101000000.000001Z,cn=accesslog\nreqStart: 20260101000000.000001Z\nreqType: delete\nreqDN: uid=z,ou=people,dc=x\nreqAuthzID: cn=admin,dc=x\n"
	if err := p.Parse(context.Background(), strings.NewReader(in), "stdin", &s); err != nil {
		t.Fatal(err)
	}
	if evs := s.Events(); len(evs) != 1 || evs[0].Action != "user.delete" || evs[0].Source.File != "stdin" {
		t.Fatalf("parser events: %+v", evs)
	}
}
