package accounts

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/event"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// testKey is the HMAC key of the golden tests (a real collector makes a
// random one).
var testKey = bytes.Repeat([]byte{0x42}, keySize)

var goldenNow = time.Date(2026, 11, 25, 17, 37, 8, 0, time.UTC)

type problemList []string

func (p *problemList) add(where, reason, sample string) {
	*p = append(*p, where+": "+reason+": "+sample)
}

func readRoot(t *testing.T, root string, probs *problemList) *Snapshot {
	t.Helper()
	rd := &reader{root: root, key: testKey, sudoers: true, problem: probs.add}
	s, err := rd.take()
	if err != nil {
		t.Fatal(err)
	}
	s.MTimes = nil // checkout times are not reproducible
	return s
}

// TestDiffGolden diffs each testdata/diff/CASE/old against CASE/new: real
// account files edited the way the research saw tools and people edit them
// (direct appends, sed -i, vipw, newusers, chpasswd -e, visudo -f).
func TestDiffGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/diff/*")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var probs problemList
			old := readRoot(t, filepath.Join(dir, "old"), &probs)
			probs = nil
			cur := readRoot(t, filepath.Join(dir, "new"), &probs)
			d := &differ{privileged: map[string]bool{"sudo": true, "wheel": true}, now: goldenNow}
			var got bytes.Buffer
			for _, f := range d.diff(old, cur) {
				ev := f.ev
				ev.ID = event.NewID(Type, "golden", f.key)
				ev.ObservedTime = goldenNow
				ev.Source.Collector = Type
				ev.Origin = event.Origin{System: "linux", Host: "vm"}
				ev.Complete()
				if err := event.Validate(&ev); err != nil {
					t.Errorf("%s: invalid event: %v", f.key, err)
				}
				line, _ := json.Marshal(ev)
				got.Write(line)
				got.WriteByte('\n')
			}
			for i, p := range probs {
				probs[i] = strings.ReplaceAll(p, dir+string(filepath.Separator), "")
			}
			gotProbs := strings.Join(probs, "\n")
			if gotProbs != "" {
				gotProbs += "\n"
			}
			checkNoSecrets(t, got.String(), old, cur)
			checkNoSecrets(t, gotProbs, old, cur)
			golden(t, filepath.Join(dir, "want.ndjson"), got.String())
			golden(t, filepath.Join(dir, "want-problems.txt"), gotProbs)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if got == "" {
			os.Remove(path)
			return
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		want, err = nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run with -update to accept)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// checkNoSecrets fails if out holds a password hash or any stored digest.
func checkNoSecrets(t *testing.T, out string, snaps ...*Snapshot) {
	t.Helper()
	for _, p := range []string{"$6$", "$y$", "$5$", "$1$"} {
		if strings.Contains(out, p) {
			t.Errorf("output holds a password hash (%q)", p)
		}
	}
	for _, s := range snaps {
		for _, u := range s.Users {
			if u.PassDigest != "" && strings.Contains(out, u.PassDigest) {
				t.Errorf("output holds the password digest of %s", u.Name)
			}
		}
		for _, g := range s.Groups {
			if g.PassDigest != "" && strings.Contains(out, g.PassDigest) {
				t.Errorf("output holds the group password digest of %s", g.Name)
			}
		}
	}
}

func TestPassField(t *testing.T) {
	rd := &reader{key: testKey}
	for _, tc := range []struct {
		in     string
		state  string
		locked bool
	}{
		{"$6$salt$hash", PassSet, false},
		{"!$6$salt$hash", PassSet, true},
		{"!!$y$j9T$salt$hash", PassSet, true},
		{"", PassEmpty, false},
		{"!", PassDisabled, false},
		{"!!", PassDisabled, false},
		{"*", PassDisabled, false},
		{"!*", PassDisabled, false},
		{"abcdefghijklm", PassSet, false}, // traditional DES
	} {
		state, locked, digest := rd.passField("shadow", tc.in)
		if state != tc.state || locked != tc.locked {
			t.Errorf("passField(%q) = %s,%v; want %s,%v", tc.in, state, locked, tc.state, tc.locked)
		}
		if (state == PassSet) != (digest != "") {
			t.Errorf("passField(%q): digest %q for state %s", tc.in, digest, state)
		}
	}
	_, _, a := rd.passField("shadow", "$6$salt$hash")
	_, _, b := rd.passField("shadow", "!$6$salt$hash")
	if a != b {
		t.Error("locking changed the digest: lock would look like a password change")
	}
	other := &reader{key: bytes.Repeat([]byte{1}, keySize)}
	if _, _, c := other.passField("shadow", "$6$salt$hash"); c == a {
		t.Error("digest does not depend on the key")
	}
}

func TestSudoersStatements(t *testing.T) {
	in := "# comment\nDefaults\tenv_reset # trailing\n%ops ALL=(ALL) \\\n   NOPASSWD: /bin/a, \\\n /bin/b\n#includedir /etc/sudoers.d\n#1001 ALL=(ALL) ALL\nfoo ALL=\\#x ALL\n\n"
	got := sudoersStatements([]byte(in))
	want := []string{"Defaults env_reset", "%ops ALL=(ALL) NOPASSWD: /bin/a, /bin/b", "#includedir /etc/sudoers.d", "#1001 ALL=(ALL) ALL", `foo ALL=\#x ALL`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
