package central

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/signer"
)

// benchLoad is a pre-sealed workload: per agent stream, batches in order.
type benchLoad struct {
	agents  []string
	streams [][][]byte // wire-encoded batches per stream
	events  int
}

func makeBenchLoad(tb testing.TB, tc *testCentral, streams, batches, perBatch int) *benchLoad {
	tb.Helper()
	l := &benchLoad{}
	for s := range streams {
		id := fmt.Sprintf("bench-%d", s)
		c := tc.agents[id].chain(tb, filepath.Join(tc.dir, "chain-"+id))
		var wires [][]byte
		for i := range batches {
			// Events move forward in time as a real stream's do.
			t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*perBatch) * time.Second)
			b := sealAt(tb, c, fmt.Sprintf("%s-%d", id, i), perBatch, t0)
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

type loadResult struct {
	events int
	// elapsed is until the last ack; indexed until every event is
	// queryable.
	elapsed, indexed time.Duration
	p50, p99         time.Duration
}

// runLoad sends every stream's batches in parallel, each stream in order
// waiting for its ack, as agents do.
func runLoad(tb testing.TB, tc *testCentral, l *benchLoad, viaHTTPS bool) loadResult {
	tb.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for _, wires := range l.streams {
		wg.Go(func() {
			for _, w := range wires {
				t0 := time.Now()
				var r *Receipt
				var err error
				for {
					if viaHTTPS {
						var status int
						status, r = tc.postRaw(tb, w)
						if status == http.StatusServiceUnavailable {
							time.Sleep(10 * time.Millisecond)
							continue
						}
					} else {
						r, err = tc.srv.Ingester().Ingest(context.Background(), w, "bench")
						if err != nil {
							tb.Error(err)
							return
						}
					}
					break
				}
				d := time.Since(t0)
				if r.Verdict != signer.Accepted {
					tb.Errorf("verdict %s: %s", r.Verdict, r.Reason)
					return
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res := loadResult{events: l.events, elapsed: time.Since(start)}
	st := tc.srv.Store()
	maxID, err := st.MaxBatchID(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.WaitIndexed(context.Background(), maxID); err != nil {
		tb.Fatal(err)
	}
	res.indexed = time.Since(start)
	slices.Sort(lat)
	if len(lat) > 0 {
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return res
}

func benchIngest(b *testing.B, viaHTTPS bool) {
	ReserveIndexProcs()
	defer runtime.SetDefaultGOMAXPROCS()
	const streams, batches, perBatch = 16, 10, 1000
	ids := make([]string, streams)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", i)
	}
	gen := startTestCentral(b, ids...)
	load := makeBenchLoad(b, gen, streams, batches, perBatch)
	var total loadResult
	var cpu time.Duration
	var p99s, p50s []time.Duration
	for b.Loop() {
		b.StopTimer()
		tc := restartFresh(b, gen)
		b.StartTimer()
		c0 := processCPU()
		r := runLoad(b, tc, load, viaHTTPS)
		cpu += processCPU() - c0
		b.Logf("load average during run: %s", loadAvg())
		b.StopTimer()
		for ph, v := range tc.srv.Metrics().PhaseTotals() {
			b.Logf("phase %s: mean %.1f ms over %.0f batches", ph, v[0]/v[1]*1000, v[1])
		}
		total.events += r.events
		total.elapsed += r.elapsed
		total.indexed += r.indexed
		p99s = append(p99s, r.p99)
		p50s = append(p50s, r.p50)
		b.StartTimer()
	}
	slices.Sort(p99s)
	slices.Sort(p50s)
	b.ReportMetric(float64(total.events)/total.elapsed.Seconds(), "acked-events/s")
	b.ReportMetric(float64(total.events)/total.indexed.Seconds(), "indexed-events/s")
	// CPU per event tells what the machine sustains when it is not shared:
	// 2 cores / (cpu-s per event) bounds the rate.
	b.ReportMetric(float64(cpu.Microseconds())/float64(total.events), "cpu-µs/event")
	b.ReportMetric(float64(p50s[len(p50s)/2].Microseconds())/1000, "p50-ack-ms")
	b.ReportMetric(float64(p99s[len(p99s)-1].Microseconds())/1000, "p99-ack-ms")
}

// sendBatch sends one wire batch to central, through the Ingester or its
// HTTPS API.
func sendBatch(tc *testCentral, wire []byte, viaHTTPS bool) (*Receipt, error) {
	if !viaHTTPS {
		return tc.srv.Ingester().Ingest(context.Background(), wire, "bench")
	}
	resp, err := tc.client.Post(tc.url+"/v1/batches", signer.BatchMediaType, bytes.NewReader(wire))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r Receipt
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("status %d: receipt: %w", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		r.Retry = true
	}
	return &r, nil
}

// logPhases logs each ingest phase's mean and the share of batches that
// spent longer than 100 and 250 ms in it: where ack latency goes.
func logPhases(b *testing.B, m *Metrics) {
	mfs, err := m.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "provtrail_central_ingest_phase_seconds" {
			continue
		}
		for _, mm := range mf.GetMetric() {
			h := mm.GetHistogram()
			n := float64(h.GetSampleCount())
			over := map[float64]float64{}
			for _, bk := range h.GetBucket() {
				over[bk.GetUpperBound()] = 1 - float64(bk.GetCumulativeCount())/n
			}
			b.Logf("phase %s: mean %.1f ms, %.1f%% over 100 ms, %.1f%% over 250 ms", mm.GetLabel()[0].GetValue(),
				h.GetSampleSum()/n*1000, over[0.1]*100, over[0.25]*100)
		}
	}
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// restartFresh starts a new central with an empty data dir and the same
// agents and keys as tc.
func restartFresh(tb testing.TB, tc *testCentral) *testCentral {
	tb.Helper()
	cfg := *tc.cfg
	cfg.Central.DataDir = tb.TempDir()
	srv, err := New(context.Background(), &cfg, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Shutdown(context.Background()) })
	n := *tc
	n.srv, n.cfg, n.url = srv, &cfg, "https://"+srv.Addr()
	return &n
}

// BenchmarkIngest measures verified+logged+stored ingest of 16 agent
// streams in parallel (10 batches of 1000 events each), through the
// Ingester: acked-events/s until the last ack, indexed-events/s until
// every event is queryable and in the entitlement table. Every event is a
// group membership grant, the dearest kind to index: an event row and its
// five index entries in events.db, a history entry and a current
// entitlement (and its index entry) in entitlements.db, written by the
// two index stages in parallel (BenchmarkIndexStages measures each).
func BenchmarkIngest(b *testing.B) { benchIngest(b, false) }

// BenchmarkIngestHTTPS is the same load through the HTTPS API.
func BenchmarkIngestHTTPS(b *testing.B) { benchIngest(b, true) }

// BenchmarkIndexStages measures the two index stages alone, one after the
// other on one goroutine, over the BenchmarkIngest load (160 batches of
// 1000 group grants): the CPU time each stage costs per event (process
// CPU, so it holds on a busy machine), which bounds the indexed rate (the
// stages run in parallel).
func BenchmarkIndexStages(b *testing.B) {
	ctx := context.Background()
	var batches [][]StoredEvent
	for s := range 16 {
		for i := range 10 {
			t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*1000) * time.Second)
			body, _ := testEventsAt(fmt.Sprintf("bench-%d-%d", s, i), 1000, t0)
			evs, _ := parseEvents(body, signer.Digest{byte(s), byte(i)}, nil)
			batches = append(batches, evs)
		}
	}
	var evTime, entTime time.Duration
	events := 0
	for b.Loop() {
		b.StopTimer()
		s, err := openSQLite(ctx, b.TempDir(), nil, false)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.prepareIndex(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		per := max(1, maxIndexEvents/1000)
		for i := 0; i < len(batches); i += per {
			var todo []indexBatch
			for j := i; j < min(i+per, len(batches)); j++ {
				todo = append(todo, indexBatch{id: int64(j + 1), logIndex: uint64(j), events: batches[j]})
				events += len(batches[j])
			}
			c0 := processCPU()
			skipped, err := s.insertEventsTx(ctx, todo, todo[len(todo)-1].id)
			if err != nil {
				b.Fatal(err)
			}
			c1 := processCPU()
			if err := s.indexEntitlements(indexJob{todo: todo, skipped: skipped}); err != nil {
				b.Fatal(err)
			}
			evTime += c1 - c0
			entTime += processCPU() - c1
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(evTime.Microseconds())/float64(events), "events-µs/event")
	b.ReportMetric(float64(entTime.Microseconds())/float64(events), "entitlements-µs/event")
}

// BenchmarkIngestSustained offers a steady load, as a fleet of agents
// does, instead of BenchmarkIngest's burst: 16 streams
// (PROVTRAIL_BENCH_STREAMS) send 1000-event batches (PROVTRAIL_BENCH_BATCH;
// every event a group grant, as there) paced to
// PROVTRAIL_BENCH_RATE events/s in total (default 50,000) for
// PROVTRAIL_BENCH_SECONDS (default 10), each stream waiting for its ack
// before the next send as agents do. It reports the rate offered and
// acknowledged, the indexed rate (events over the time until the last one
// is queryable and in the entitlement table), the p50/p99 ack latency at
// that load, and the largest index backlog seen (events acknowledged but
// not yet indexed). A backlog that stays near one index transaction means
// the store keeps up with the load; retries count the sends central
// deferred because its index fell too far behind.
func BenchmarkIngestSustained(b *testing.B) { benchSustained(b, false) }

// BenchmarkIngestSustainedHTTPS is the same load through the HTTPS API
// (the clients' TLS work shares the 2 cores with central's).
func BenchmarkIngestSustainedHTTPS(b *testing.B) { benchSustained(b, true) }

func benchSustained(b *testing.B, viaHTTPS bool) {
	ReserveIndexProcs()
	defer runtime.SetDefaultGOMAXPROCS()
	rate, seconds := 50000, 10
	if v, err := strconv.Atoi(os.Getenv("PROVTRAIL_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("PROVTRAIL_BENCH_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	streams, perBatch := 16, 1000
	if v, err := strconv.Atoi(os.Getenv("PROVTRAIL_BENCH_STREAMS")); err == nil && v > 0 {
		streams = v
	}
	if v, err := strconv.Atoi(os.Getenv("PROVTRAIL_BENCH_BATCH")); err == nil && v > 0 {
		perBatch = v
	}
	batches := max(1, rate*seconds/(streams*perBatch))
	ids := make([]string, streams)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", i)
	}
	gen := startTestCentral(b, ids...)
	load := makeBenchLoad(b, gen, streams, batches, perBatch)
	interval := time.Duration(float64(time.Second) * float64(streams*perBatch) / float64(rate))
	for b.Loop() {
		b.StopTimer()
		tc := restartFresh(b, gen)
		st := tc.srv.Store()
		b.StartTimer()
		c0 := processCPU()
		var mu sync.Mutex
		var lat []time.Duration
		var late time.Duration
		retries := 0
		var wg sync.WaitGroup
		start := time.Now()
		stop := make(chan struct{})
		maxBacklog := 0
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					maxBacklog = max(maxBacklog, st.IndexBacklog())
				}
			}
		}()
		for s, wires := range load.streams {
			offset := interval * time.Duration(s) / time.Duration(streams)
			wg.Go(func() {
				for i, w := range wires {
					due := start.Add(offset + time.Duration(i)*interval)
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					} else {
						mu.Lock()
						late = max(late, -d)
						mu.Unlock()
					}
					t0 := time.Now()
					for {
						r, err := sendBatch(tc, w, viaHTTPS)
						if r != nil && r.Retry {
							// Central asks to slow down (index backlog), as
							// it would with 503 + Retry-After: wait as an
							// agent does; the latency counts the wait.
							mu.Lock()
							retries++
							mu.Unlock()
							time.Sleep(100 * time.Millisecond)
							continue
						}
						if err != nil || r.Verdict != signer.Accepted {
							b.Errorf("ingest: %v %+v", err, r)
							return
						}
						break
					}
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		acked := time.Since(start)
		maxID, err := st.MaxBatchID(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := st.WaitIndexed(context.Background(), maxID); err != nil {
			b.Fatal(err)
		}
		indexed := time.Since(start)
		close(stop)
		<-sampled
		cpu := processCPU() - c0
		b.StopTimer()
		slices.Sort(lat)
		n := float64(load.events)
		offeredSpan := interval * time.Duration(batches)
		b.ReportMetric(n/offeredSpan.Seconds(), "offered-events/s")
		b.ReportMetric(n/acked.Seconds(), "acked-events/s")
		b.ReportMetric(n/indexed.Seconds(), "indexed-events/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ack-ms")
		b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ack-ms")
		b.ReportMetric(float64(maxBacklog), "max-backlog-events")
		b.ReportMetric(float64(late.Microseconds())/1000, "max-send-late-ms")
		b.ReportMetric(float64(retries), "retries")
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/event")
		b.Logf("%d events in %d batches; acked after %.2fs, all indexed after %.2fs; load average %s",
			load.events, streams*batches, acked.Seconds(), indexed.Seconds(), loadAvg())
		logPhases(b, tc.srv.Metrics())
		b.StartTimer()
	}
}

// BenchmarkQuery measures the first page (100 events) of typical queries,
// and entitlement queries, on a store of 320 batches of 1000 group grants
// (320,000 events and holdings: user0..user999 on 320 hosts): a selective
// term (a user, a host) is read from its postings, a term every event has
// (the action) by scanning events in time order, and entitlements by user
// or group across systems read the whole table.
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var last int64
	for i := range 320 {
		t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i*1000) * time.Second)
		body, _ := testEventsAt(fmt.Sprintf("q-%d", i), 1000, t0)
		evs, _ := parseEvents(body, signer.Digest{byte(i), byte(i >> 8)}, nil)
		w := testBatchWrite("a1", uint64(i))
		w.Batch.Body, w.Batch.Events, w.Batch.HeaderHash, w.Events = body, len(evs), []byte{byte(i), byte(i >> 8)}, evs
		res, err := s.CommitBatch(ctx, w)
		if err != nil {
			b.Fatal(err)
		}
		last = res.BatchID
	}
	if err := s.WaitIndexed(ctx, last); err != nil {
		b.Fatal(err)
	}
	mid := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(160000 * time.Second)
	for _, tc := range []struct {
		name string
		q    EventQuery
	}{
		{"user", EventQuery{User: "user7"}},
		{"host", EventQuery{Host: "host-q-200"}},
		{"actor+user", EventQuery{Actor: "root", User: "user7"}},
		{"user+window", EventQuery{User: "user7", Since: mid, Until: mid.Add(24 * time.Hour)}},
		{"action (every event)", EventQuery{Action: "group.member.add"}},
		{"group (every event)", EventQuery{Group: "wheel"}},
		{"window", EventQuery{Since: mid, Until: mid.Add(time.Hour)}},
		{"absent user", EventQuery{User: "nobody"}},
	} {
		b.Run("events/"+tc.name, func(b *testing.B) {
			q := tc.q
			q.Limit = 100
			for b.Loop() {
				if _, err := s.QueryEvents(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		q    EntitlementQuery
	}{
		{"user", EntitlementQuery{User: "user7"}},
		{"user on one system", EntitlementQuery{User: "user7", System: "linux"}},
		{"group", EntitlementQuery{Group: "wheel", User: "user7"}},
	} {
		b.Run("entitlements/"+tc.name, func(b *testing.B) {
			for b.Loop() {
				hs, err := s.Entitlements(ctx, tc.q)
				if err != nil || len(hs) == 0 {
					b.Fatal(len(hs), err)
				}
			}
		})
	}
}
