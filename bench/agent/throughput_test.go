// Package agent measures the agent's throughput from an auth log on disk to
// batches central has acknowledged, with the real provtrail binary (fsync
// per spooled batch, signing, zstd, HTTPS) against a verifying receiver.
//
//	PROVTRAIL_BENCH=1 go test -run TestAgentThroughput -v ./bench/agent/
//
// Knobs (environment): PROVTRAIL_BENCH_EVENTS (default 300000),
// PROVTRAIL_BENCH_BATCH (batch_max_events, default 500, the agent default),
// PROVTRAIL_BENCH_CPUPROFILE (a file for the agent's CPU profile).
// It reports the sustained events/s (the rate between 10% and 90% of the
// events acknowledged) and the rate from start to the last acknowledgement,
// CPU-seconds of the agent process per 100k events,
// and the agent's peak RSS (VmHWM) and steady-state RSS.
package agent

import (
	"bufio"
	"crypto"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/internal/testenv"
	"github.com/provtrail/provtrail/signer"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// procStatusKB reads a "Name: N kB" line of /proc/PID/status.
func procStatusKB(pid int, name string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

func TestAgentThroughput(t *testing.T) {
	if os.Getenv("PROVTRAIL_BENCH") != "1" {
		t.Skip("set PROVTRAIL_BENCH=1 to run the agent throughput harness")
	}
	n := envInt("PROVTRAIL_BENCH_EVENTS", 300000)
	batch := envInt("PROVTRAIL_BENCH_BATCH", 500)
	dir := t.TempDir()

	bin := filepath.Join(dir, "provtrail")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/provtrail/provtrail/cmd/provtrail").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	k, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.WriteKeyPair(dir, "agent", k, nil); err != nil {
		t.Fatal(err)
	}
	recv := testenv.StartReceiver(t, testenv.ReceiverOptions{Audience: "bench", TLS: true, DiscardEvents: true,
		Agents: map[string]crypto.PublicKey{"bench-host": k.Public()}})

	// The input: n useradd lines, as Debian 12 writes them.
	authLog := filepath.Join(dir, "auth.log")
	f, err := os.Create(authLog)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	t0 := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ts := t0.Add(time.Duration(i) * time.Millisecond)
		fmt.Fprintf(w, "%s bench-host useradd[%d]: new user: name=user%d, UID=%d, GID=%d, home=/home/user%d, shell=/bin/bash, from=/dev/pts/0\n",
			ts.Format("2006-01-02T15:04:05.000000-07:00"), 1000+i%30000, i, 10000+i, 10000+i, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(authLog)

	cfgPath := filepath.Join(dir, "agent.hcl")
	cfg := fmt.Sprintf(`
agent {
  id                 = "bench-host"
  state_dir          = %q
  heartbeat_interval = "1h"
}
signer { key_file = %q }
forward {
  url              = %q
  audience         = "bench"
  ca_file          = %q
  batch_max_events = %d
}
collector "authlog" "system" {
  paths    = [%q]
  start_at = "beginning"
}
`, filepath.Join(dir, "state"), filepath.Join(dir, "agent.key"), recv.URL, recv.CAFile, batch, authLog)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	logf, _ := os.Create(filepath.Join(dir, "agent.log"))
	defer logf.Close()
	args := []string{"agent", "--config", cfgPath, "--log-level", "warn"}
	if prof := os.Getenv("PROVTRAIL_BENCH_CPUPROFILE"); prof != "" {
		args = append(args, "--cpuprofile", prof)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	var rssSamples []int64
	// progress samples the acknowledged count every 10 ms: the sustained
	// rate is read off the middle of the run, away from start-up and from
	// the last batch, which waits out batch_max_wait because no more lines
	// come to fill it.
	var progress []ackSample
	lastRSS := start
	deadline := start.Add(10 * time.Minute)
	for {
		c := recv.EventCount()
		progress = append(progress, ackSample{time.Since(start), c})
		if c >= n {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("timed out: %d of %d events acknowledged", c, n)
		}
		time.Sleep(10 * time.Millisecond)
		if time.Since(lastRSS) >= 50*time.Millisecond {
			lastRSS = time.Now()
			if rss := procStatusKB(pid, "VmRSS"); rss > 0 {
				rssSamples = append(rssSamples, rss)
			}
		}
	}
	elapsed := time.Since(start)
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	recvCPU := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	peak := procStatusKB(pid, "VmHWM")
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())

	// Steady state: the median of the samples in the second half of the run.
	steady := int64(0)
	if len(rssSamples) > 0 {
		half := append([]int64(nil), rssSamples[len(rssSamples)/2:]...)
		for i := range half {
			for j := i + 1; j < len(half); j++ {
				if half[j] < half[i] {
					half[i], half[j] = half[j], half[i]
				}
			}
		}
		steady = half[len(half)/2]
	}
	batches := len(recv.Batches())
	t.Logf("input: %d lines, %.1f MiB; batch_max_events=%d; %d batches acknowledged", n, float64(fi.Size())/(1<<20), batch, batches)
	rate, from, to := sustainedRate(progress, n)
	t.Logf("file -> acknowledged, sustained: %.0f events/s (from %d%% to %d%% of the events acknowledged, %.2fs to %.2fs after start)",
		rate, 10, 90, from.Seconds(), to.Seconds())
	t.Logf("file -> acknowledged, start to last ack: %.0f events/s (%.2fs, incl. start-up and the last batch's batch_max_wait), %.0f batches/s",
		float64(n)/elapsed.Seconds(), elapsed.Seconds(), float64(batches)/elapsed.Seconds())
	t.Logf("agent CPU: %.2fs total, %.3f CPU-seconds per 100k events", cpu.Seconds(), cpu.Seconds()/float64(n)*100000)
	t.Logf("agent RSS: peak (VmHWM) %.1f MiB, steady-state median %.1f MiB", float64(peak)/1024, float64(steady)/1024)
	t.Logf("receiver (this test process, verifying every batch) CPU: %.2fs; machine load average %s", recvCPU.Seconds(), loadAvg())
	if v := recv.Verdicts(); v["accepted"] != batches {
		t.Errorf("verdicts: %v", v)
	}
}

type ackSample struct {
	at    time.Duration
	acked int
}

// sustainedRate is the acknowledgement rate between the first samples
// that reach 10% and 90% of n events.
func sustainedRate(s []ackSample, n int) (rate float64, from, to time.Duration) {
	lo, hi := -1, -1
	for i, x := range s {
		if lo < 0 && x.acked >= n/10 {
			lo = i
		}
		if hi < 0 && x.acked >= n*9/10 {
			hi = i
		}
	}
	if lo < 0 || hi <= lo {
		return 0, 0, 0
	}
	d := s[hi].at - s[lo].at
	return float64(s[hi].acked-s[lo].acked) / d.Seconds(), s[lo].at, s[hi].at
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
