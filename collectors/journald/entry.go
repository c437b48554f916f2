package journald

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// MaxEntryBytes bounds one JSON entry of journalctl's output.
const MaxEntryBytes = 1 << 20

// entry is one journal entry with each field's first value as a string.
type entry map[string]string

// decodeEntry decodes one line of `journalctl -o json`. Values are strings,
// arrays of byte values (binary or non-UTF-8 data), arrays of those (a
// field repeated in one entry: the first value is kept) or null (a field
// over the size limit without --all).
func decodeEntry(line []byte) (entry, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, err
	}
	e := make(entry, len(raw))
	for k, v := range raw {
		s, ok := decodeValue(v)
		if ok {
			e[k] = s
		}
	}
	if e["__CURSOR"] == "" {
		return nil, fmt.Errorf("entry has no __CURSOR")
	}
	return e, nil
}

func decodeValue(v json.RawMessage) (string, bool) {
	if len(v) == 0 || string(v) == "null" {
		return "", false
	}
	switch v[0] {
	case '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return s, true
	case '[':
		var bytes []byte
		var nums []int
		if json.Unmarshal(v, &nums) == nil {
			for _, n := range nums {
				if n < 0 || n > 255 {
					return "", false
				}
				bytes = append(bytes, byte(n))
			}
			return string(bytes), true
		}
		var many []json.RawMessage
		if json.Unmarshal(v, &many) == nil && len(many) > 0 {
			return decodeValue(many[0])
		}
	}
	return "", false
}

// time returns when the entry was logged: the sender's own timestamp when
// journald recorded one, else the journal's.
func (e entry) time() (time.Time, bool) {
	for _, k := range []string{"_SOURCE_REALTIME_TIMESTAMP", "__REALTIME_TIMESTAMP"} {
		if us, err := strconv.ParseInt(e[k], 10, 64); err == nil && us > 0 {
			return time.UnixMicro(us).UTC(), true
		}
	}
	return time.Time{}, false
}
