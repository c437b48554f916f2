package tail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/collectors"
)

// benchFile writes n audit-record-sized lines and returns the path and
// the byte count.
func benchFile(b *testing.B, n int) (string, int64) {
	path := filepath.Join(b.TempDir(), "audit.log")
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, "type=USER_MGMT msg=audit(1795628335.%03d:%d): pid=%d uid=0 auid=1000 ses=3 msg='op=changing-shell acct=\"pt_user%d\" exe=\"/usr/sbin/usermod\" hostname=vm addr=? terminal=pts/1 res=success'\n", i%1000, i, 4000+i, i)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o640); err != nil {
		b.Fatal(err)
	}
	return path, int64(sb.Len())
}

// BenchmarkFollow reads a file of 20,000 lines through Follow, with the
// Position of every line encoded (what auditd gets).
func BenchmarkFollow(b *testing.B) {
	const n = 20000
	path, size := benchFile(b, n)
	tl, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		got := 0
		err := tl.Follow(ctx, path, nil, func(_ []byte, _ collectors.Position) error {
			if got++; got == n {
				cancel()
			}
			return nil
		}, nil)
		if got != n || err != context.Canceled {
			b.Fatalf("%d lines, %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkRun reads the same file through Run and Hooks, the way authlog
// does: positions only when asked for.
func BenchmarkRun(b *testing.B) {
	const n = 20000
	path, size := benchFile(b, n)
	tl, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithCancel(context.Background())
		got := 0
		f := NewFile(path, Hooks{Line: func([]byte, int64) error {
			if got++; got == n {
				cancel()
			}
			return nil
		}})
		if err := tl.Run(ctx, nil, true, f); got != n || err != context.Canceled {
			b.Fatalf("%d lines, %v", got, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
}
