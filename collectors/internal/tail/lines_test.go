package tail

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
)

// The line reader gives the same lines, offsets and over-long reports
// whatever sizes the underlying reads come in.
func TestLineReaderChunking(t *testing.T) {
	const max = 300
	var in strings.Builder
	for i := 0; i < 400; i++ {
		n := (i * 37) % 700 // some lines are longer than max
		fmt.Fprintf(&in, "%d %s\n", i, strings.Repeat("x", n))
	}
	in.WriteString("partial tail")
	read := func(r *LineReader) (lines []string, long []int64, tail string) {
		r.TooLong = func(off int64, prefix []byte) {
			if len(prefix) > 120 {
				t.Errorf("prefix of %d bytes", len(prefix))
			}
			long = append(long, off)
		}
		for {
			l, off, err := r.Next()
			if err == ErrNoLine {
				p, _ := r.Partial()
				return lines, long, string(p)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(l) > max {
				t.Fatalf("line of %d bytes returned", len(l))
			}
			if !strings.HasPrefix(in.String()[off:], string(l)+"\n") {
				t.Fatalf("line at %d does not match the input", off)
			}
			lines = append(lines, fmt.Sprintf("%d:%s", off, l))
		}
	}
	wantLines, wantLong, wantTail := read(NewLineReader(strings.NewReader(in.String()), 0, max))
	for _, r := range []*LineReader{
		NewLineReader(iotest.OneByteReader(strings.NewReader(in.String())), 0, max),
		NewLineReader(iotest.HalfReader(strings.NewReader(in.String())), 0, max),
		NewLineReader(iotest.DataErrReader(strings.NewReader(in.String())), 0, max),
	} {
		lines, long, tail := read(r)
		if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") || fmt.Sprint(long) != fmt.Sprint(wantLong) || tail != wantTail {
			t.Errorf("chunked read differs: %d lines / %d long / tail %q, want %d / %d / %q", len(lines), len(long), tail, len(wantLines), len(wantLong), wantTail)
		}
	}
	if len(wantLong) == 0 || len(wantLines)+len(wantLong) != 400 || wantTail != "partial tail" {
		t.Errorf("%d lines, %d long, tail %q", len(wantLines), len(wantLong), wantTail)
	}
	// A tailer sees the rest of a partial line once it is written.
	var buf bytes.Buffer
	buf.WriteString("abc")
	r := NewLineReader(&buf, 0, max)
	if _, _, err := r.Next(); err != ErrNoLine {
		t.Fatalf("partial line: %v", err)
	}
	buf.WriteString("def\n")
	if l, off, err := r.Next(); err != nil || string(l) != "abcdef" || off != 0 || r.Consumed() != 7 {
		t.Fatalf("got %q at %d (%v), consumed %d", l, off, err, r.Consumed())
	}
}
