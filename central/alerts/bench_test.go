package alerts

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// BenchmarkEvaluate50Rules measures rule evaluation per event with 50 rules
// loaded, on a mix of actions like a real trail (mostly password changes and
// modifications). Compare ns/event with the ingest path's cost per event.
func BenchmarkEvaluate50Rules(b *testing.B) {
	var src strings.Builder
	src.WriteString("variables {\n  privileged_groups = [\"sudo\", \"wheel\", \"admins\", \"docker\"]\n}\n")
	actions := event.Actions()
	for i := range 45 {
		a := actions[i%len(actions)]
		fmt.Fprintf(&src, "alert \"r%d\" {\n  when = event.action == %q && event.actor.name == \"svc-%d\"\n}\n", i, a, i)
	}
	src.WriteString(`alert "priv" {
  when = event.action == "group.member.add" && contains(var.privileged_groups, event.target.group.name)
}
alert "burst" {
  when = event.action == "privilege.grant"
  group_by = [event.actor.name]
  threshold {
    count = 1000000
    within = "10m"
  }
}
alert "seq" {
  sequence {
    first = event.action == "user.create"
    then = event.action == "user.delete"
    same = [event.target.user.name]
    within = "1h"
  }
}
alert "failures" {
  when = event.action == "password.change" && event.outcome == "failure"
}
alert "root" {
  when = contains(["user.create", "user.delete"], event.action) && event.actor.name == "root"
}
`)
	f, diags := hclconfig.ParseBytes("bench.hcl", []byte(src.String()))
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "variables"}, {Type: "alert", LabelNames: []string{"name"}}}})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	cfg, diags := DecodeConfig(content.Blocks, hclconfig.EvalContext(".", nil))
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	if len(cfg.Rules) != 50 {
		b.Fatalf("%d rules", len(cfg.Rules))
	}
	eng, err := New(context.Background(), cfg, nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	mix := []event.Action{event.PasswordChange, event.PasswordChange, event.UserModify, event.PasswordChange,
		event.GroupMemberAdd, event.UserModify, event.PasswordChange, event.UserCreate, event.PrivilegeGrant, event.UserDelete}
	batch := make([]Indexed, 500)
	for i := range batch {
		batch[i] = ev(i, mix[i%len(mix)], 0, group("users"))
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if err := eng.Evaluate(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
}
