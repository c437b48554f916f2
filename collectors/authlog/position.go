package authlog

import (
	"encoding/json"
	"fmt"
)

// positionVersion is the version of the Position JSON below.
const positionVersion = 1

// position is the authlog collector's collectors.Position, as JSON:
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
type position struct {
	Version int       `json:"v"`
	Files   []filePos `json:"files"`
}

type filePos struct {
	Path           string   `json:"path"`
	Device         uint64   `json:"device,omitempty"`
	Inode          uint64   `json:"inode,omitempty"`
	Fingerprint    string   `json:"fingerprint,omitempty"`
	FingerprintLen int      `json:"fingerprint_len,omitempty"`
	Offset         int64    `json:"offset"`
	ContextOffset  int64    `json:"context_offset"`
	Skip           []string `json:"skip,omitempty"`
}

func encodePosition(files []filePos) []byte {
	b, err := json.Marshal(position{Version: positionVersion, Files: files})
	if err != nil {
		panic(fmt.Sprintf("authlog: marshal position: %v", err)) // plain structs cannot fail
	}
	return b
}

func decodePosition(b []byte) (map[string]filePos, error) {
	out := map[string]filePos{}
	if len(b) == 0 {
		return out, nil
	}
	var p position
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("authlog position: %w", err)
	}
	if p.Version != positionVersion {
		return nil, fmt.Errorf("authlog position: version %d, want %d", p.Version, positionVersion)
	}
	for _, f := range p.Files {
		if f.Offset < 0 || f.ContextOffset < 0 || f.ContextOffset > f.Offset {
			return nil, fmt.Errorf("authlog position: bad offsets for %s", f.Path)
		}
		out[f.Path] = f
	}
	return out, nil
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
