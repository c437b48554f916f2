package alerts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// BenchmarkEvaluate50Rules measures rule evaluation per event with the 50
// benchmark rules (benchEngine), on a mix of actions like a real trail
// (mostly password changes and modifications). Compare ns/event with the ingest path's cost per event.
func BenchmarkEvaluate50Rules(b *testing.B) {
	eng := benchEngine(b, Options{})
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

// BenchmarkEvaluateStored50Rules measures EvaluateStored per event, as
// central calls it (index fields and JSON lines), with central's 50
// benchmark rules: on a mixed trail, and on the worst case where every
// event is a group grant that the threshold and the sequence keep state
// for; allgrants-names is that with the names given (Stored.NamesExact),
// as an index that keeps them would. Each round's events are 500 s later
// than the last round's, as a stream's batches are.
func BenchmarkEvaluateStored50Rules(b *testing.B) {
	for _, load := range []string{"mixed", "allgrants", "allgrants-names"} {
		b.Run(load, func(b *testing.B) {
			eng := benchEngine(b, Options{State: FileState{Path: b.TempDir() + "/state.json"}})
			mix := []string{"password.change", "password.change", "user.modify", "password.change", "group.member.add",
				"user.modify", "password.change", "user.create", "privilege.grant", "user.delete"}
			t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
			batch := make([]Stored, 500)
			for j := range batch {
				action, actor := "group.member.add", "root"
				if load == "mixed" {
					action, actor = mix[j%len(mix)], "admin1"
				}
				ts := t0.Add(time.Duration(j) * time.Second)
				line := fmt.Sprintf(`{"id":"bench-%d","time":%q,"observed_time":%q,"action":%q,"outcome":"success","severity":"medium","actor":{"name":%q,"uid":0,"type":"human"},"target":{"user":{"name":"user%d"},"group":{"name":"wheel"}},"origin":{"system":"linux","host":"host-1","program":"gpasswd"},"source":{"collector":"authlog"},"ocsf":{"class_uid":3006,"activity_id":3,"type_uid":300603,"category_uid":3}}`,
					j, ts.Format(time.RFC3339), ts.Format(time.RFC3339), action, actor, j)
				batch[j] = Stored{ID: fmt.Sprintf("bench-%d", j), Time: ts, JSON: []byte(line), NamesExact: load == "allgrants-names",
					Fields: Fields{Action: action, Outcome: "success", Actor: actor, User: fmt.Sprintf("user%d", j), Group: "wheel", Host: "host-1", System: "linux"}}
			}
			ctx := context.Background()
			round := int64(0)
			for b.Loop() {
				round++
				for j := range batch {
					batch[j].Time = batch[j].Time.Add(500 * time.Second)
					batch[j].LogIndex = round
				}
				if err := eng.EvaluateStored(ctx, batch, round); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/event")
		})
	}
}

// benchEngine is an engine with central's BenchmarkIngestRules rule set
// (testdata/bench-50-rules.hcl): 45 literal rules, a privileged grant
// through var, and a threshold and a sequence that keep state for every
// group.member.add. It is closed when the benchmark ends.
func benchEngine(b *testing.B, opts Options) *Engine {
	src, err := os.ReadFile(filepath.Join("testdata", "bench-50-rules.hcl"))
	if err != nil {
		b.Fatal(err)
	}
	f, diags := hclconfig.ParseBytes("bench-50-rules.hcl", src)
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
	eng, err := New(context.Background(), cfg, nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	return eng
}
