package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, cfg Config) *Spool {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func payload(i int) []byte {
	return []byte(fmt.Sprintf("batch-%04d:%s", i, strings.Repeat("x", i%37)))
}

func appendN(t *testing.T, s *Spool, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		idx, err := s.Append(payload(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if idx != uint64(i) {
			t.Fatalf("Append %d got index %d", i, idx)
		}
	}
}

// drain reads every pending entry without acknowledging it.
func drain(t *testing.T, s *Spool) []Entry {
	t.Helper()
	var out []Entry
	var after uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		e, err := s.Next(ctx, after)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, e)
		after = e.Index
	}
}

func indexes(es []Entry) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Index)
	}
	return out
}

func TestAppendReopenAck(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	appendN(t, s, 1, 5)
	if err := s.Ack(2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = open(t, Config{Dir: dir})
	got := drain(t, s)
	if fmt.Sprint(indexes(got)) != "[3 4 5]" {
		t.Fatalf("pending after reopen = %v, want [3 4 5]", indexes(got))
	}
	for _, e := range got {
		if !bytes.Equal(e.Data, payload(int(e.Index))) {
			t.Fatalf("entry %d = %q, want %q", e.Index, e.Data, payload(int(e.Index)))
		}
	}
	appendN(t, s, 6, 1)
	st := s.Stats()
	if st.Acked != 2 || st.Last != 6 || st.Pending != 4 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRotationAndRemoval(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, MaxBytes: 64 << 10, SegmentBytes: 4096})
	appendN(t, s, 1, 200)
	if st := s.Stats(); st.Segments < 3 {
		t.Fatalf("expected several segments, got %d", st.Segments)
	}
	if err := s.Ack(150); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(200); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Pending != 0 || st.Segments != 1 {
		t.Fatalf("after acking all: %+v", st)
	}
	s.Close()
	s = open(t, Config{Dir: dir, MaxBytes: 64 << 10, SegmentBytes: 4096})
	if got := drain(t, s); len(got) != 0 {
		t.Fatalf("acked entries came back: %v", indexes(got))
	}
	appendN(t, s, 201, 1)
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.wal"))
	return m
}

func TestRecovery(t *testing.T) {
	type result struct {
		pending          string
		torn, damaged    int
		lost             int
		wantBrokenCopies bool
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, path string, frames []int64)
		want   result
	}{
		{
			name:   "clean",
			damage: func(*testing.T, string, []int64) {},
			want:   result{pending: "[1 2 3 4]"},
		},
		{
			name: "torn last frame",
			damage: func(t *testing.T, p string, frames []int64) {
				truncate(t, p, frames[3]+headerSize+3)
			},
			want: result{pending: "[1 2 3]", torn: 1, wantBrokenCopies: true},
		},
		{
			name: "torn last frame header",
			damage: func(t *testing.T, p string, frames []int64) {
				truncate(t, p, frames[3]+5)
			},
			want: result{pending: "[1 2 3]", torn: 1, wantBrokenCopies: true},
		},
		{
			name: "corrupt last record",
			damage: func(t *testing.T, p string, frames []int64) {
				flip(t, p, frames[3]+headerSize+1)
			},
			want: result{pending: "[1 2 3]", torn: 1, wantBrokenCopies: true},
		},
		{
			name: "garbage after last frame",
			damage: func(t *testing.T, p string, frames []int64) {
				f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				f.Write(bytes.Repeat([]byte{0xA5}, 100))
				f.Close()
			},
			want: result{pending: "[1 2 3 4]", torn: 1, wantBrokenCopies: true},
		},
		{
			name: "zeros after last frame",
			damage: func(t *testing.T, p string, frames []int64) {
				f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
				f.Write(make([]byte, 4096))
				f.Close()
			},
			want: result{pending: "[1 2 3 4]", torn: 1, wantBrokenCopies: true},
		},
		{
			name: "last frame's padding missing",
			damage: func(t *testing.T, p string, frames []int64) {
				truncate(t, p, frames[3]+headerSize+int64(len(payload(4))))
			},
			want: result{pending: "[1 2 3 4]"},
		},
		{
			name: "corrupt middle record keeps the ones after it",
			damage: func(t *testing.T, p string, frames []int64) {
				flip(t, p, frames[1]+headerSize)
			},
			want: result{pending: "[1 3 4]", damaged: 1, lost: 1, wantBrokenCopies: true},
		},
		{
			name: "corrupt middle header",
			damage: func(t *testing.T, p string, frames []int64) {
				flip(t, p, frames[2]+1)
			},
			want: result{pending: "[1 2 4]", damaged: 1, lost: 1, wantBrokenCopies: true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, Config{Dir: dir})
			var frames []int64
			off := int64(len(fileMagic))
			for i := 1; i <= 4; i++ {
				frames = append(frames, off)
				off += frameSize(int64(len(payload(i))))
			}
			appendN(t, s, 1, 4)
			s.Close()
			segs := segFiles(t, dir)
			if len(segs) != 1 {
				t.Fatalf("segments: %v", segs)
			}
			tc.damage(t, segs[0], frames)
			damaged, _ := os.ReadFile(segs[0])

			s = open(t, Config{Dir: dir})
			st := s.Stats()
			got := result{
				pending: fmt.Sprint(indexes(drain(t, s))),
				torn:    st.TornTails, damaged: st.DamagedRegions, lost: st.LostIndexes,
			}
			broken, _ := filepath.Glob(filepath.Join(dir, "*.broken-*"))
			got.wantBrokenCopies = len(broken) > 0
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if len(broken) > 0 {
				kept, _ := os.ReadFile(broken[0])
				if !bytes.Equal(kept, damaged) {
					t.Fatalf(".broken copy differs from the damaged segment")
				}
			}
			// The spool keeps working after recovery and the new entry
			// survives another reopen.
			idx, err := s.Append([]byte("after recovery"))
			if err != nil {
				t.Fatal(err)
			}
			// A torn entry's Append never returned, so its index is reused.
			want := uint64(5) - uint64(tc.want.torn)
			if strings.HasPrefix(tc.name, "garbage") || strings.HasPrefix(tc.name, "zeros") {
				want = 5
			}
			if idx != want {
				t.Fatalf("index after recovery = %d, want %d", idx, want)
			}
			s.Close()
			s = open(t, Config{Dir: dir})
			es := drain(t, s)
			if len(es) == 0 || es[len(es)-1].Index != idx || string(es[len(es)-1].Data) != "after recovery" {
				t.Fatalf("after second reopen: %v", indexes(es))
			}
			if st := s.Stats(); st.TornTails != 0 || st.DamagedRegions != 0 && tc.want.damaged == 0 {
				t.Fatalf("second reopen found more damage: %+v", st)
			}
		})
	}
}

func truncate(t *testing.T, p string, n int64) {
	t.Helper()
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, p string, off int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 0xFF
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestInterruptedSegmentCreation(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	appendN(t, s, 1, 2)
	s.Close()
	// A crash during newSegment leaves a .tmp file, or a renamed file
	// whose header never reached the disk.
	os.WriteFile(filepath.Join(dir, segName(3)+tmpSuffix), []byte(fileMagic), 0o600)
	os.WriteFile(filepath.Join(dir, segName(3)), nil, 0o600)
	s = open(t, Config{Dir: dir})
	if got := fmt.Sprint(indexes(drain(t, s))); got != "[1 2]" {
		t.Fatalf("pending = %s", got)
	}
	if idx, err := s.Append([]byte("x")); err != nil || idx != 3 {
		t.Fatalf("Append = %d, %v", idx, err)
	}
}

func TestFullBlocksUntilAck(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, MaxBytes: 16 << 10})
	data := bytes.Repeat([]byte("a"), 1000)
	held := fill(t, s, data)
	n := held[len(held)-1]
	st := s.Stats()
	if !st.Full || st.FullEvents != 1 {
		t.Fatalf("stats after filling: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.WaitForSpace(ctx, len(data)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitForSpace on a full spool = %v, want deadline", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitForSpace(context.Background(), len(data)) }()
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitForSpace returned before any ack: %v", err)
	default:
	}
	if err := s.Ack(n); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("WaitForSpace did not return after the ack freed space")
	}
	if _, err := s.Append(data); err != nil {
		t.Fatalf("Append after ack: %v", err)
	}
	if s.Stats().Full {
		t.Fatal("still marked full after a successful append")
	}
	if _, err := s.Append(make([]byte, 20<<10)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized append = %v, want ErrTooLarge", err)
	}
}

func TestNextWaitsForAppend(t *testing.T) {
	s := open(t, Config{Dir: t.TempDir()})
	got := make(chan Entry, 1)
	go func() {
		e, err := s.Next(context.Background(), 0)
		if err == nil {
			got <- e
		}
	}()
	time.Sleep(10 * time.Millisecond)
	appendN(t, s, 1, 1)
	select {
	case e := <-got:
		if e.Index != 1 {
			t.Fatalf("index %d", e.Index)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next did not wake up")
	}
	s.Close()
	if _, err := s.Next(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{4 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s, err := Open(Config{Dir: b.TempDir(), MaxBytes: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := bytes.Repeat([]byte("e"), size)
			b.SetBytes(int64(size))
			for b.Loop() {
				idx, err := s.Append(data)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Ack(idx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzOpen writes arbitrary bytes after valid frames and opens the spool:
// recovery must never fail on content, never lose the valid frames before
// the damage, and leave a spool that appends and reopens cleanly.
func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, uint8(3))
	f.Add([]byte("garbage"), uint8(1))
	f.Add(encodeFrame(typeEntry, 9, []byte("x")), uint8(2))
	f.Add(append(encodeFrame(typeAck, 2, nil), 0xff, 0, 0), uint8(4))
	f.Fuzz(func(t *testing.T, tail []byte, n uint8) {
		if len(tail) > 1<<16 {
			return
		}
		dir := t.TempDir()
		s, err := Open(Config{Dir: dir, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		good := int(n % 8)
		for i := 1; i <= good; i++ {
			if _, err := s.Append(payload(i)); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		seg := filepath.Join(dir, segName(1))
		fh, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.Write(tail)
		fh.Close()
		s, err = Open(Config{Dir: dir, NoSync: true})
		if err != nil {
			t.Fatalf("Open after damage: %v", err)
		}
		var got []Entry
		s.Scan(func(e Entry, _ bool) error { got = append(got, e); return nil })
		if len(got) < good {
			t.Fatalf("lost valid entries: %d of %d", len(got), good)
		}
		for i := 0; i < good; i++ {
			if got[i].Index != uint64(i+1) || !bytes.Equal(got[i].Data, payload(i+1)) {
				t.Fatalf("entry %d changed", i+1)
			}
		}
		idx, err := s.Append([]byte("after"))
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = Open(Config{Dir: dir, NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		e, ok, err := s.Newest()
		if err != nil || !ok || e.Index != idx || string(e.Data) != "after" {
			t.Fatalf("newest after reopen: %v %v %v", e, ok, err)
		}
	})
}

// TestAppendBeyondOnFullSpool: copies of held entries go in even when the
// spool is full, and acknowledging the originals makes room again.
func TestAppendBeyondOnFullSpool(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir, MaxBytes: 16 << 10, SegmentBytes: 4 << 10})
	data := bytes.Repeat([]byte("a"), 1000)
	held := fill(t, s, data)
	for _, idx := range held {
		cp, err := s.AppendBeyond(data)
		if err != nil {
			t.Fatalf("copy of %d: %v", idx, err)
		}
		if cp <= held[len(held)-1] {
			t.Fatalf("copy index %d not after the originals", cp)
		}
		if err := s.Ack(idx); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Pending != len(held) {
		t.Fatalf("pending %d, want the %d copies", st.Pending, len(held))
	}
	s.Close()
	s = open(t, Config{Dir: dir, MaxBytes: 16 << 10, SegmentBytes: 4 << 10})
	if got := len(drain(t, s)); got != len(held) {
		t.Fatalf("after reopening %d entries pending, want %d", got, len(held))
	}
}

// fill appends data until the spool is full and returns the indexes.
func fill(t *testing.T, s *Spool, data []byte) []uint64 {
	t.Helper()
	var held []uint64
	for {
		idx, err := s.Append(data)
		if errors.Is(err, ErrFull) {
			return held
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, idx)
	}
}
