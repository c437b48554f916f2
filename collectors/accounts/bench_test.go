package accounts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// bigRoot writes a root with n users, each with a private group and a
// supplementary group.
func bigRoot(b *testing.B, n int) string {
	root := b.TempDir()
	var pw, sh, gr, gs strings.Builder
	for i := range n {
		fmt.Fprintf(&pw, "user%d:x:%d:%d:User %d:/home/user%d:/bin/bash\n", i, 10000+i, 10000+i, i, i)
		fmt.Fprintf(&sh, "user%d:$6$salt%d$%s:20000:0:99999:7:::\n", i, i, strings.Repeat("h", 86))
		fmt.Fprintf(&gr, "user%d:x:%d:\n", i, 10000+i)
		fmt.Fprintf(&gs, "user%d:!::\n", i)
	}
	members := make([]string, 0, n)
	for i := range n {
		members = append(members, fmt.Sprintf("user%d", i))
	}
	fmt.Fprintf(&gr, "staff:x:50:%s\n", strings.Join(members, ","))
	fmt.Fprintf(&gs, "staff:*::%s\n", strings.Join(members, ","))
	os.MkdirAll(filepath.Join(root, "etc/sudoers.d"), 0o755)
	for rel, s := range map[string]string{relPasswd: pw.String(), relShadow: sh.String(), relGroup: gr.String(), relGshadow: gs.String(), relSudoers: "root ALL=(ALL) ALL\n"} {
		if err := os.WriteFile(filepath.Join(root, rel), []byte(s), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkIdlePoll is the cost of one poll tick when nothing changed:
// the stat fingerprint of the watched files.
func BenchmarkIdlePoll(b *testing.B) {
	root := bigRoot(b, 10)
	r := &run{c: &Collector{cfg: Config{Root: root, Sudoers: true}}, rd: &reader{root: root}}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.fingerprint()
	}
}

// BenchmarkSnapshotDiff reads a 2000-account root and diffs it against
// itself with one change: the work of one fsnotify wake-up.
func BenchmarkSnapshotDiff(b *testing.B) {
	root := bigRoot(b, 2000)
	rd := &reader{root: root, key: testKey, sudoers: true, problem: func(string, string, string) {}}
	old, err := rd.take()
	if err != nil {
		b.Fatal(err)
	}
	d := &differ{privileged: map[string]bool{"sudo": true}, now: time.Unix(0, 0)}
	var size int64
	for _, rel := range []string{relPasswd, relShadow, relGroup, relGshadow} {
		fi, _ := os.Stat(filepath.Join(root, rel))
		size += fi.Size()
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		cur, err := rd.take()
		if err != nil {
			b.Fatal(err)
		}
		cur.Users["user7"].Shell = "/bin/sh"
		if n := len(d.diff(old, cur)); n != 1 {
			b.Fatalf("%d findings", n)
		}
	}
}

// BenchmarkIdleCollector reports the CPU a running collector (fsnotify
// watch plus a 1s poll, the shortest allowed) costs while nothing changes:
// run with -benchtime=10x; each iteration is 200ms of idle wall time.
func BenchmarkIdleCollector(b *testing.B) {
	root := bigRoot(b, 100)
	cfg := DefaultConfig()
	cfg.Root, cfg.PollInterval = root, time.Second
	c := New(collectors.Settings{Type: Type, Name: "idle", StateDir: b.TempDir()}, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, nil, collectors.EmitFunc(func(context.Context, ...collectors.Record) error { return nil }))
	}()
	time.Sleep(500 * time.Millisecond) // baseline snapshot taken
	before := cpuTime()
	start := time.Now()
	for b.Loop() {
		time.Sleep(200 * time.Millisecond)
	}
	used := cpuTime() - before
	b.ReportMetric(float64(used.Microseconds())/time.Since(start).Seconds(), "cpu-µs/s")
	cancel()
	<-done
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
