package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/provtrail/provtrail/internal/atomicfile"
)

// FileState keeps rule state in one JSON file, replaced atomically (write,
// fsync, rename, fsync directory) so a crash leaves the old or the new
// state, never a torn one.
type FileState struct {
	Path string
}

// LoadAlertState returns the saved state, or nil when there is none yet.
func (f FileState) LoadAlertState(context.Context) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read alert state: %w", err)
	}
	return b, nil
}

// SaveAlertState replaces the saved state.
func (f FileState) SaveAlertState(_ context.Context, state []byte) error {
	if err := atomicfile.Write(f.Path, state); err != nil {
		return fmt.Errorf("save alert state: %w", err)
	}
	return nil
}

// appendWindows appends the state of rules (their windows) and the
// watermark as encoding/json would write an engineState (keys in map
// order, not sorted), several times faster, reusing each key's encoding
// from the last save when the key did not change: central writes the
// state of every rule every save interval.
func appendWindows(buf []byte, rules []*compiled, through *int64) ([]byte, error) {
	buf = append(buf, `{"windows":{`...)
	first := true
	for _, c := range rules {
		if len(c.win) == 0 {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, c.r.Name)
		buf = append(buf, ":{"...)
		firstKey := true
		for key, l := range c.win {
			if !l.encOK {
				var err error
				if l.enc, err = appendRefs(l.enc[:0], l.refs); err != nil {
					return nil, err
				}
				l.encOK = true
			}
			if !firstKey {
				buf = append(buf, ',')
			}
			firstKey = false
			buf = appendJSONString(buf, key)
			buf = append(buf, ':')
			buf = append(buf, l.enc...)
		}
		buf = append(buf, '}')
	}
	buf = append(buf, '}')
	if through != nil {
		buf = append(buf, `,"through":`...)
		buf = strconv.AppendInt(buf, *through, 10)
	}
	return append(buf, '}'), nil
}

// appendRefs appends refs as a JSON array.
func appendRefs(buf []byte, refs []EventRef) ([]byte, error) {
	buf = append(buf, '[')
	for i, ref := range refs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"id":`...)
		buf = appendJSONString(buf, ref.ID)
		buf = append(buf, `,"log_index":`...)
		buf = strconv.AppendInt(buf, ref.LogIndex, 10)
		buf = append(buf, `,"time":`...)
		if y := ref.Time.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("event %s: time %v has no RFC 3339 form", ref.ID, ref.Time)
		}
		buf = append(buf, '"')
		buf = ref.Time.AppendFormat(buf, time.RFC3339Nano)
		buf = append(buf, "\"}"...)
	}
	return append(buf, ']'), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s) // escapes; a string always encodes
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
