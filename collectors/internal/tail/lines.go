package tail

import (
	"bytes"
	"errors"
	"io"
)

// ErrNoLine is returned by LineReader.Next when no complete line is
// buffered and the underlying reader has nothing more for now (io.EOF). A
// partial last line stays buffered: a tailer waits for its newline, a
// one-shot parse takes it with Partial.
var ErrNoLine = errors.New("no complete line")

// LineReader splits a byte stream into lines of at most max bytes without
// allocating per line. Lines longer than max are reported through TooLong
// and skipped up to their newline, however long they are.
type LineReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	// off is the stream offset of buf[start].
	off int64
	max int
	// skipping is set while the rest of an over-long line is discarded.
	skipping bool
	// TooLong, if set, is called once per over-long line with its offset
	// and at most its first 120 bytes.
	TooLong func(off int64, prefix []byte)
}

// NewLineReader returns a reader of r, whose first byte is at stream
// offset off, for lines of at most max bytes.
func NewLineReader(r io.Reader, off int64, max int) *LineReader {
	size := max + 1
	if size < 128<<10 {
		size = 128 << 10
	}
	return &LineReader{r: r, buf: make([]byte, size), off: off, max: max}
}

// Reset makes the reader continue from r at stream offset off, dropping
// whatever was buffered.
func (lr *LineReader) Reset(r io.Reader, off int64) {
	lr.r = r
	lr.start, lr.end = 0, 0
	lr.off = off
	lr.skipping = false
}

// SkipPartial discards everything up to the next newline: the reader was
// placed in the middle of a line.
func (lr *LineReader) SkipPartial() { lr.skipping = true }

// Consumed returns the stream offset just after the last line returned.
func (lr *LineReader) Consumed() int64 { return lr.off }

// ReadPos returns the stream offset of everything read so far, including
// a buffered partial line.
func (lr *LineReader) ReadPos() int64 { return lr.off + int64(lr.end-lr.start) }

// Next returns the next line without its newline, and its offset. The
// slice is valid until the next call. It returns ErrNoLine when the reader
// reached the end of what is there for now, and the reader's own error
// otherwise.
func (lr *LineReader) Next() ([]byte, int64, error) {
	scanFrom := lr.start
	zeroReads := 0
	for {
		if i := bytes.IndexByte(lr.buf[scanFrom:lr.end], '\n'); i >= 0 {
			nl := scanFrom + i
			if lr.skipping {
				lr.off += int64(nl + 1 - lr.start)
				lr.start = nl + 1
				lr.skipping = false
				scanFrom = lr.start
				continue
			}
			line := lr.buf[lr.start:nl]
			off := lr.off
			lr.off += int64(nl + 1 - lr.start)
			lr.start = nl + 1
			if len(line) > lr.max {
				if lr.TooLong != nil {
					lr.TooLong(off, line[:min(len(line), 120)])
				}
				scanFrom = lr.start
				continue
			}
			return line, off, nil
		}
		pending := lr.end - lr.start
		if lr.skipping {
			lr.off += int64(pending)
			lr.start, lr.end = 0, 0
			pending = 0
		} else if pending > lr.max {
			if lr.TooLong != nil {
				lr.TooLong(lr.off, lr.buf[lr.start:lr.start+min(pending, 120)])
			}
			lr.skipping = true
			lr.off += int64(pending)
			lr.start, lr.end = 0, 0
			pending = 0
		}
		if lr.start > 0 && (lr.end == len(lr.buf) || pending == 0) {
			copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.start, lr.end = 0, pending
		}
		scanFrom = lr.end
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		if n > 0 {
			continue
		}
		if err == nil {
			zeroReads++
			if zeroReads > 100 {
				return nil, 0, io.ErrNoProgress
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil, 0, ErrNoLine
		}
		return nil, 0, err
	}
}

// Partial takes the buffered partial last line (no newline yet) as a
// complete line, for the end of a one-shot parse or a rotated file that
// will never be written again. It returns nil when there is none.
func (lr *LineReader) Partial() ([]byte, int64) {
	if lr.skipping {
		lr.off += int64(lr.end - lr.start)
		lr.start, lr.end = 0, 0
		lr.skipping = false
		return nil, 0
	}
	if lr.end == lr.start {
		return nil, 0
	}
	line := lr.buf[lr.start:lr.end]
	off := lr.off
	lr.off += int64(len(line))
	lr.start, lr.end = 0, 0
	return line, off
}
