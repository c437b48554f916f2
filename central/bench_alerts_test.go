package central

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/signer"
)

// fiftyRules is 50 rules of every kind (alerts/testdata/bench-50-rules.hcl,
// shared with the alerts package's benchmark). For the benchmark's events
// (group.member.add to wheel by root) a handful are evaluated per event
// and none fires; the threshold and the sequence keep per-key state.
func fiftyRules(tb testing.TB) string {
	b, err := os.ReadFile(filepath.Join("alerts", "testdata", "bench-50-rules.hcl"))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// makeMixedLoad seals a workload with a mix of actions like a real trail
// (mostly password changes and account modifications; grants, creations
// and deletions are rarer).
func makeMixedLoad(tb testing.TB, tc *testCentral, streams, batches, perBatch int) *benchLoad {
	tb.Helper()
	mix := []string{"password.change", "password.change", "user.modify", "password.change", "group.member.add",
		"user.modify", "password.change", "user.create", "privilege.grant", "user.delete"}
	l := &benchLoad{}
	for s := range streams {
		id := fmt.Sprintf("bench-%d", s)
		c := tc.agents[id].chain(tb, filepath.Join(tc.dir, "chain-"+id))
		var wires [][]byte
		for i := range batches {
			t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*perBatch) * time.Second)
			var buf bytes.Buffer
			for j := range perBatch {
				ts := t0.Add(time.Duration(j) * time.Second).Format(time.RFC3339Nano)
				action := mix[j%len(mix)]
				target := fmt.Sprintf(`{"user":{"name":"user%d"}}`, j)
				switch action {
				case "group.member.add":
					target = fmt.Sprintf(`{"user":{"name":"user%d"},"group":{"name":"users"}}`, j)
				case "privilege.grant":
					target = fmt.Sprintf(`{"user":{"name":"user%d"},"privileges":["s3:GetObject"]}`, j)
				}
				fmt.Fprintf(&buf, `{"id":"%s-%d-%d","time":%q,"observed_time":%q,"action":%q,"outcome":"success","severity":"medium","actor":{"name":"admin1","type":"human"},"target":%s,"origin":{"system":"linux","host":"%s"},"source":{"collector":"authlog"}}`+"\n",
					id, i, j, ts, ts, action, target, id)
			}
			b, err := c.Seal(context.Background(), buf.Bytes(), signer.Meta{FirstTime: t0, LastTime: t0.Add(time.Duration(perBatch-1) * time.Second)}, nil)
			if err != nil {
				tb.Fatal(err)
			}
			w, err := signer.MarshalBatch(b)
			if err != nil {
				tb.Fatal(err)
			}
			wires = append(wires, w)
			l.events += perBatch
		}
		l.agents = append(l.agents, id)
		l.streams = append(l.streams, wires)
	}
	return l
}

// BenchmarkIngestRules compares ingest throughput, until every event is
// stored, indexed and (with rules) evaluated, with no rules and with 50:
// on a mixed trail, and on a worst case where every event is a group
// grant that the threshold and the sequence rules keep state for.
func BenchmarkIngestRules(b *testing.B) {
	for _, load := range []string{"mixed", "allgrants"} {
		for _, withRules := range []bool{false, true} {
			name := load + "/none"
			if withRules {
				name = load + "/50rules"
			}
			b.Run(name, func(b *testing.B) { benchIngestRules(b, load == "mixed", withRules) })
		}
	}
}

func benchIngestRules(b *testing.B, mixed, withRules bool) {
	const streams, batches, perBatch = 8, 10, 500
	ids := make([]string, streams)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", i)
	}
	mutate := func(*Config) {}
	if withRules {
		mutate = withAlertConfig(b, fiftyRules(b))
	}
	gen := startTestCentralWith(b, mutate, ids...)
	if withRules && len(gen.cfg.Alerts.Rules) != 50 {
		b.Fatalf("%d rules", len(gen.cfg.Alerts.Rules))
	}
	var load *benchLoad
	if mixed {
		load = makeMixedLoad(b, gen, streams, batches, perBatch)
	} else {
		load = makeBenchLoad(b, gen, streams, batches, perBatch)
	}
	events, elapsed := 0, time.Duration(0)
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		tc := restartFresh(b, gen)
		b.StartTimer()
		start, c0 := time.Now(), processCPU()
		r := runLoad(b, tc, load, false)
		if withRules {
			maxID, err := tc.srv.Store().MaxBatchID(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			for tc.srv.EvaluatedThrough() < maxID {
				time.Sleep(time.Millisecond)
			}
		}
		elapsed += time.Since(start)
		cpu += processCPU() - c0
		events += r.events
	}
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(events), "cpu-µs/event")
}
