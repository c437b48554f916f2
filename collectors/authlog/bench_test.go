package authlog

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// BenchmarkParse parses a realistic auth file (99% sshd, cron, PAM
// session, systemd-logind and sudo-for-other-commands lines, 1% account
// changes) in each layout. It reports lines/s next to MB/s and allocs.
func BenchmarkParse(b *testing.B) {
	const lines = 50000
	for _, c := range []struct {
		name string
		l    layout
	}{{"traditional", layoutTraditional}, {"rfc3339", layoutRFC3339}, {"rfc5424", layoutRFC5424}} {
		b.Run(c.name, func(b *testing.B) {
			data, changes := mixedLog(c.l, lines)
			p := testParser(b, nil)
			p.opts.now = func() time.Time { return testNow }
			events := 0
			emit := collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
				events += len(recs)
				return nil
			})
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			start, cpu0 := time.Now(), cpuTime(b)
			n := 0
			for b.Loop() {
				events = 0
				if err := p.Parse(context.Background(), strings.NewReader(data), "bench", emit); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n*lines)/time.Since(start).Seconds(), "lines/s")
			// The process's CPU time (all threads, GC included): lines per
			// second of one core even when other work shares the machine.
			b.ReportMetric(float64(n*lines)/(cpuTime(b)-cpu0).Seconds(), "lines/cpu-s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*lines), "ns/line")
			if events == 0 || events > changes {
				b.Fatalf("%d events from %d change lines", events, changes)
			}
		})
	}
}

// Unrelated lines are rejected without allocating.
func TestUnrelatedLinesDoNotAllocate(t *testing.T) {
	var lines [][]byte
	for _, l := range []layout{layoutTraditional, layoutRFC3339, layoutRFC5424} {
		for i, n := range noiseBodies {
			lines = append(lines, []byte(formatLine(l, 5000+i, n.prog, n.pid, n.msg)))
		}
	}
	p := testParser(t, nil)
	lp := newLineParser(p.opts, "x", func([]parsed, int64) error { t.Fatal("event from noise"); return nil })
	allocs := testing.AllocsPerRun(20, func() {
		for _, l := range lines {
			if err := lp.line(l, 0); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per %d unrelated lines, want 0", allocs, len(lines))
	}
}

// BenchmarkTail measures the collector end to end on a real file: open,
// read, parse, build positions, emit.
func BenchmarkTail(b *testing.B) {
	const lines = 200000
	data, _ := mixedLog(layoutRFC3339, lines)
	want := len(parseAll(b, testParser(b, nil), "x", []byte(data)))
	path := b.TempDir() + "/auth.log"
	if err := os.WriteFile(path, []byte(data), 0o640); err != nil {
		b.Fatal(err)
	}
	cfg := tailConfig(path)
	cfg.FlushAfter = time.Millisecond
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		c, err := New(collectors.Settings{Type: Type, Name: "bench"}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		got := 0
		done := make(chan error, 1)
		go func() {
			done <- c.Run(ctx, nil, collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
				got += len(recs)
				if got >= want {
					cancel()
				}
				return nil
			}))
		}()
		<-done
		cancel()
		n++
	}
	b.ReportMetric(float64(n*lines)/b.Elapsed().Seconds(), "lines/s")
}
