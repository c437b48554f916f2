package authlog

import (
	"github.com/provtrail/provtrail/collectors/internal/tail"
)

// filePos is one entry of the authlog collector's collectors.Position,
// the shared tailer's (tail.Position) extended with skip:
//
//	{"v":1,"files":[{"path":"/var/log/auth.log","device":2049,"inode":9978609,
//	  "fingerprint":"9f86d0…","fingerprint_len":1024,"offset":81234,
//	  "context_offset":80990,"skip":["4b1f…"]}]}
//
// One entry per configured path. device and inode name the file the offset
// belongs to (after a rename rotation that may be path.1); fingerprint is
// the SHA-256 of the file's first fingerprint_len bytes, which tells a
// rotated-and-recreated file that got the same inode from the original.
// offset is where reading resumes; context_offset (<= offset) is where
// re-reading starts so that the sudo/su lines that precede the next change
// are seen again (nothing before offset is emitted); skip lists events
// already emitted whose twin lines lie after offset.
type filePos struct {
	tail.FilePos
	Skip []string `json:"skip,omitempty"`
}

// AppendPositionJSON appends fp as encoding/json would (tail.Encode's fast
// path).
func (fp filePos) AppendPositionJSON(dst []byte) []byte {
	dst = append(dst, '{')
	dst = fp.FilePos.AppendJSONFields(dst)
	if len(fp.Skip) > 0 {
		dst = append(dst, `,"skip":[`...)
		for i, id := range fp.Skip {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = tail.AppendJSONString(dst, id)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// recordPositions gives each event of one flush its resume point: the
// first line of the next event, or resume after the last; events already
// emitted that still have lines after that point are listed in Skip.
// contextStart maps a resume offset to its context_offset.
func recordPositions(evs []parsed, resume int64, base filePos, contextStart func(int64) int64) []filePos {
	out := make([]filePos, len(evs))
	for i := range evs {
		fp := base
		fp.Offset = resume
		if i+1 < len(evs) {
			fp.Offset = evs[i+1].first
		}
		fp.ContextOffset = min(contextStart(fp.Offset), fp.Offset)
		fp.Skip = nil
		for j := 0; j <= i; j++ {
			if evs[j].last >= fp.Offset {
				fp.Skip = append(fp.Skip, evs[j].ev.ID)
			}
		}
		out[i] = fp
	}
	return out
}
