package accounts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
)

// FuzzSnapshot feeds arbitrary passwd/shadow/group/gshadow/sudoers content
// through the reader and the differ: no panic, every event valid, no
// password hash in any event or problem.
func FuzzSnapshot(f *testing.F) {
	files, _ := filepath.Glob("testdata/diff/*/new/etc/*")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil && !strings.HasSuffix(p, "sudoers.d") {
			f.Add(filepath.Base(p), b)
		}
	}
	f.Add("passwd", []byte("a:x:0:0::/:/bin/sh\n\x00:\n::::::\n"))
	base := &Snapshot{Users: map[string]*User{"a": {Name: "a", UID: 1, GID: 1}}, Groups: map[string]*Group{"g": {Name: "g", GID: 1, Members: []string{"a"}}}}
	f.Fuzz(func(t *testing.T, which string, data []byte) {
		var probs []string
		rd := &reader{key: testKey, problem: func(where, reason, sample string) { probs = append(probs, sample) }}
		s := &Snapshot{Users: map[string]*User{}, Groups: map[string]*Group{}, MTimes: map[string]time.Time{}}
		rd.parsePasswd(s, data, "passwd")
		switch which {
		case "shadow":
			rd.parseShadow(s, data, "shadow")
		case "group":
			rd.parseGroup(s, data, "group")
		case "gshadow":
			rd.parseGroup(s, data, "group")
			rd.parseGshadow(s, data, "gshadow")
		default:
			s.Sudoers = map[string][]string{relSudoers: sudoersStatements(data)}
		}
		d := &differ{privileged: map[string]bool{"sudo": true}, now: time.Unix(1, 0)}
		for _, pair := range [][2]*Snapshot{{base, s}, {s, base}} {
			for _, fd := range d.diff(pair[0], pair[1]) {
				ev := fd.ev
				ev.ID, ev.ObservedTime, ev.Source.Collector = "x", time.Unix(1, 0), Type
				ev.Complete()
				b, _ := json.Marshal(ev)
				for _, c := range ev.Changes {
					if strings.Contains(c.Old+c.New, "$6$") && strings.Count(c.Old+c.New, "$") >= 3 && c.Field == "password" {
						t.Fatalf("password hash in changes: %s", b)
					}
				}
				_ = event.Validate(&ev)
			}
		}
		for _, p := range probs {
			if len(p) > 64 {
				t.Fatalf("problem sample longer than 64 bytes: %q", p)
			}
		}
	})
}
