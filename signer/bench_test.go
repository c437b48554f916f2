package signer

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const benchEvents = 500

// benchChain returns a chain past seq 0 (so the chain key signs, as for every batch but
// the first) and the stream state central has for it.
func benchChain(b *testing.B, enc Encoding) (*sim, StreamState, *Verifier) {
	b.Helper()
	a := newSim(b, filepath.Join(b.TempDir(), "s"), ChainConfig{Audience: vecAudience, AgentID: vecAgent, Identity: loadTestKey(b, "identity"), Encoding: enc}, "bench")
	v, err := NewVerifier(VerifierConfig{Audience: vecAudience})
	if err != nil {
		b.Fatal(err)
	}
	pub, _ := ParsePublicKeyPEM([]byte(testPubPEM(b, "identity")))
	st, _ := NewStreamState(vecAgent, pub)
	res, err := v.Verify(context.Background(), st, a.seal(1, 0))
	if err != nil || res.Verdict != Accepted {
		b.Fatalf("seq 0: %v %v", res.Verdict, err)
	}
	return a, res.Next, v
}

// cpuClock reads this process's user+system CPU time. On a shared, overloaded machine
// wall time per op includes waiting for a core; CPU time per op does not.
func cpuClock() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perEvent reports wall and CPU nanoseconds per event; cpu0 is cpuClock() before the loop.
func perEvent(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchEvents, "ns/event")
	b.ReportMetric(float64((cpuClock()-cpu0).Nanoseconds())/float64(b.N)/benchEvents, "cpu-ns/event")
}

// BenchmarkSign500 measures what sealing costs in CPU for a 500-event batch: optional
// compression, body SHA-256, header JSON, Ed25519 signature, envelope. (State persistence
// is BenchmarkSeal500Durable.)
func BenchmarkSign500(b *testing.B) {
	for _, enc := range []Encoding{EncodingIdentity, EncodingZstd, EncodingGzip} {
		b.Run(string(enc), func(b *testing.B) {
			a, _, _ := benchChain(b, enc)
			body, meta := events(benchEvents, 0), metaFor(benchEvents)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			ctx := context.Background()
			cpu0 := cpuClock()
			for b.Loop() {
				if _, _, err := a.chain.build(ctx, body, meta); err != nil {
					b.Fatal(err)
				}
			}
			perEvent(b, cpu0)
		})
	}
}

// BenchmarkSeal500Durable is the full Seal: sign, then advance the state with a new key,
// write + fsync + rename + directory fsync.
func BenchmarkSeal500Durable(b *testing.B) {
	a, _, _ := benchChain(b, EncodingZstd)
	body, meta := events(benchEvents, 0), metaFor(benchEvents)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	ctx := context.Background()
	cpu0 := cpuClock()
	for b.Loop() {
		if _, err := a.chain.Seal(ctx, body, meta, nil); err != nil {
			b.Fatal(err)
		}
	}
	perEvent(b, cpu0)
}

// BenchmarkVerify500 measures central's Verify of a 500-event batch: envelope and header
// decoding, key check, signature, body digest, decompression, event count.
func BenchmarkVerify500(b *testing.B) {
	for _, enc := range []Encoding{EncodingIdentity, EncodingZstd, EncodingGzip} {
		b.Run(string(enc), func(b *testing.B) {
			a, st, v := benchChain(b, enc)
			batch := a.seal(benchEvents, 0)
			data := frame(b, batch)
			b.SetBytes(int64(len(events(benchEvents, 0))))
			b.ReportAllocs()
			ctx := context.Background()
			cpu0 := cpuClock()
			for b.Loop() {
				bb, err := UnmarshalBatch(data, Limits{})
				if err != nil {
					b.Fatal(err)
				}
				res, err := v.Verify(ctx, st, bb)
				if err != nil || res.Verdict != Accepted {
					b.Fatalf("%v %s %v", res.Verdict, res.Reason, err)
				}
			}
			perEvent(b, cpu0)
		})
	}
}
