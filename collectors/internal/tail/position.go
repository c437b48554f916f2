package tail

import (
	"encoding/json"
	"fmt"
	"strconv"

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

// AppendJSONFields appends p's members as encoding/json spells them,
// without the braces: the fast path of Encode (a collector encodes a
// Position for every record it emits), and the start of an extended
// Entry's AppendPositionJSON.
func (p FilePos) AppendJSONFields(dst []byte) []byte {
	dst = append(dst, `"path":`...)
	dst = AppendJSONString(dst, p.Path)
	if p.Device != 0 {
		dst = append(dst, `,"device":`...)
		dst = strconv.AppendUint(dst, p.Device, 10)
	}
	if p.Inode != 0 {
		dst = append(dst, `,"inode":`...)
		dst = strconv.AppendUint(dst, p.Inode, 10)
	}
	if p.Fingerprint != "" {
		dst = append(dst, `,"fingerprint":`...)
		dst = AppendJSONString(dst, p.Fingerprint)
	}
	if p.FingerprintLen != 0 {
		dst = append(dst, `,"fingerprint_len":`...)
		dst = strconv.AppendInt(dst, int64(p.FingerprintLen), 10)
	}
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, p.Offset, 10)
	dst = append(dst, `,"context_offset":`...)
	return strconv.AppendInt(dst, p.ContextOffset, 10)
}

// AppendJSONString appends s as a JSON string. Plain printable ASCII (what
// paths, hex fingerprints and event ids are) is copied; anything else is
// left to encoding/json, so the result always decodes back to s.
func AppendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// jsonAppender is an Entry that encodes itself as encoding/json would.
// The method is deliberately not FilePos's: a struct embedding FilePos
// would inherit it and lose its own members.
type jsonAppender interface {
	AppendPositionJSON(dst []byte) []byte
}

// Encode returns the Position holding files.
func Encode[E Entry](files []E) collectors.Position {
	b := make([]byte, 0, 32+256*len(files))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, PositionVersion, 10)
	b = append(b, `,"files":[`...)
	for i := range files {
		if i > 0 {
			b = append(b, ',')
		}
		// A pointer, so that the type switch does not copy the entry to
		// the heap.
		switch e := any(&files[i]).(type) {
		case *FilePos:
			b = append(b, '{')
			b = e.AppendJSONFields(b)
			b = append(b, '}')
		case jsonAppender:
			b = e.AppendPositionJSON(b)
		default:
			return encodeReflect(files)
		}
	}
	return append(b, "]}"...)
}

func encodeReflect[E Entry](files []E) collectors.Position {
	if files == nil {
		files = []E{}
	}
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
