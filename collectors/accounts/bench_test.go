package accounts

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
