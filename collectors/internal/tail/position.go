package tail

import (
	"encoding/json"
	"fmt"

	"github.com/provtrail/provtrail/collectors"
)

// PositionVersion is the version of the Position JSON below.
const PositionVersion = 1

// Position is the collectors.Position of files followed by a Tailer, as
// JSON:
//
//	{"v":1,"files":[{"path":"/var/log/auth.log","device":2049,"inode":9978609,
//	  "fingerprint":"9f86d0…","fingerprint_len":1024,"offset":81234,
//	  "context_offset":80990}]}
//
// One entry per followed path. A consumer may extend the entries with
// fields of its own by embedding FilePos (authlog adds "skip").
type Position[E Entry] struct {
	Version int `json:"v"`
	Files   []E `json:"files"`
}

// Entry is an element of Position.Files: FilePos, or a struct embedding
// it.
type Entry interface {
	File() FilePos
}

// FilePos is where reading of one followed path resumes.
//
// Device and inode name the file the offset belongs to (after a rename
// rotation that may be path.1); zero means the file did not exist when
// the position was taken, so whatever is there on resume is new and read
// from its start. Fingerprint is the SHA-256 (hex) of the file's first
// FingerprintLen bytes (at most 1024), which tells a rotated-and-recreated
// file that got the same inode from the original. Offset is where reading
// resumes: every line before it was handled. ContextOffset (<= Offset) is
// where re-reading starts, for a consumer that needs lines before Offset
// again as context (they are handed to it as already handled, see
// Opening.Done); it equals Offset for one that does not.
type FilePos struct {
	Path           string `json:"path"`
	Device         uint64 `json:"device,omitempty"`
	Inode          uint64 `json:"inode,omitempty"`
	Fingerprint    string `json:"fingerprint,omitempty"`
	FingerprintLen int    `json:"fingerprint_len,omitempty"`
	Offset         int64  `json:"offset"`
	ContextOffset  int64  `json:"context_offset"`
}

// File returns p itself; it makes FilePos, and structs embedding it, an
// Entry.
func (p FilePos) File() FilePos { return p }

// Encode returns the Position holding files.
func Encode[E Entry](files []E) collectors.Position {
	b, err := json.Marshal(Position[E]{Version: PositionVersion, Files: files})
	if err != nil {
		panic(fmt.Sprintf("tail: marshal position: %v", err)) // plain structs cannot fail
	}
	return b
}

// Decode reads a Position written by Encode, keyed by path. An empty
// Position decodes to an empty map.
func Decode[E Entry](b collectors.Position) (map[string]E, error) {
	out := map[string]E{}
	if len(b) == 0 {
		return out, nil
	}
	var p Position[E]
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("file position: %w", err)
	}
	if p.Version != PositionVersion {
		return nil, fmt.Errorf("file position: version %d, want %d", p.Version, PositionVersion)
	}
	for _, e := range p.Files {
		f := e.File()
		if f.Offset < 0 || f.ContextOffset < 0 || f.ContextOffset > f.Offset || f.FingerprintLen < 0 || f.FingerprintLen > fingerprintMax {
			return nil, fmt.Errorf("file position: bad offsets for %s", f.Path)
		}
		out[f.Path] = e
	}
	return out, nil
}
