package pipeline

import (
	"strings"
	"testing"

	"github.com/provtrail/provtrail/event"
)

func TestRedactString(t *testing.T) {
	cases := []struct {
		in, want string
		n        int
	}{
		{"useradd[812]: new user: name=bob, UID=1001", "useradd[812]: new user: name=bob, UID=1001", 0},
		{"passwd[900]: pam_unix(passwd:chauthtok): password changed for alice", "passwd[900]: pam_unix(passwd:chauthtok): password changed for alice", 0},
		{"alice:$6$rounds=5000$saltsalt$abcdefghijk/lmnop:19700:0:99999:7:::", "alice:" + event.Redacted + ":19700:0:99999:7:::", 1},
		{"bob:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o7:19000::::::", "bob:" + event.Redacted + ":19000::::::", 1},
		{"userPassword: {SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "userPassword: " + event.Redacted, 1},
		{"replace: userPassword\nuserPassword:: e1NTSEF9eHl6", "replace: userPassword\nuserPassword:: " + event.Redacted, 1},
		{`chpasswd: password=hunter2 user=bob`, `chpasswd: password=` + event.Redacted + ` user=bob`, 1},
		{`{"client_secret":"s3cr3t","name":"x"}`, `{"client_secret":` + event.Redacted + `,"name":"x"}`, 1},
		{"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc", "Authorization: Bearer " + event.Redacted, 1},
		{"key:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "key:\n" + event.Redacted + "\n", 1},
		{"password=" + event.Redacted, "password=" + event.Redacted, 0},
		{"", "", 0},
	}
	for _, tc := range cases {
		got, n := RedactString(tc.in)
		if got != tc.want || n != tc.n {
			t.Errorf("RedactString(%q)\n got %q (%d)\nwant %q (%d)", tc.in, got, n, tc.want, tc.n)
		}
	}
}

func TestRedactEvent(t *testing.T) {
	e := event.Event{
		Raw: "usermod[1]: change user 'bob' password hash $6$abc$defghijklmnop",
		Changes: []event.Change{
			{Field: "password_hash", Old: "$6$old$xxxxxxxxxx", New: "$6$new$yyyyyyyyyy"},
			{Field: "userPassword", New: "plain-text-oops"},
			{Field: "password_last_changed", Old: "19000", New: "19700"},
			{Field: "shell", Old: "/bin/sh", New: "/bin/bash"},
			{Field: "gecos", New: "token=abcdef123"},
		},
	}
	if n := Redact(&e); n != 5 {
		t.Errorf("redacted %d values, want 5", n)
	}
	if strings.Contains(e.Raw, "$6$") {
		t.Errorf("raw still has a hash: %q", e.Raw)
	}
	want := []event.Change{
		{Field: "password_hash", Old: event.Redacted, New: event.Redacted},
		{Field: "userPassword", New: event.Redacted},
		{Field: "password_last_changed", Old: "19000", New: "19700"},
		{Field: "shell", Old: "/bin/sh", New: "/bin/bash"},
		{Field: "gecos", New: "token=" + event.Redacted},
	}
	for i := range want {
		if e.Changes[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, e.Changes[i], want[i])
		}
	}
}

func FuzzRedactString(f *testing.F) {
	for _, s := range []string{"password=x", "$6$a$bbbbbbbb", "{SSHA}abc", "Bearer abcdefghijkl", "-----BEGIN RSA PRIVATE KEY-----\nx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, n := RedactString(s)
		if n == 0 && out != s {
			t.Fatalf("changed without counting: %q -> %q", s, out)
		}
		again, _ := RedactString(out)
		if again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, out, again)
		}
	})
}

// redactAll is RedactString without the cheap pre-checks: the fuzz test
// below proves the pre-checks never skip a secret the patterns would find.
func redactAll(s string) string {
	if s == "" || s == event.Redacted {
		return s
	}
	s = rePEM.ReplaceAllString(s, event.Redacted)
	s = reCrypt.ReplaceAllString(s, event.Redacted)
	s = reLDAP.ReplaceAllString(s, event.Redacted)
	s = reBearer.ReplaceAllStringFunc(s, func(m string) string { return m[:strings.IndexAny(m, " \t")+1] + event.Redacted })
	s = reKV.ReplaceAllStringFunc(s, func(m string) string {
		sub := reKV.FindStringSubmatch(m)
		if sub[2] == event.Redacted || strings.Trim(sub[2], `"'`) == event.Redacted {
			return m
		}
		return sub[1] + event.Redacted
	})
	return s
}

func FuzzRedactPrecheck(f *testing.F) {
	for _, s := range []string{"password=x", "$6$a$bbbbbbbb", "{SSHA}abc", "Bearer abcdefghijkl", "API_KEY: x", "TOKEN=1", "-----BEGIN RSA PRIVATE KEY-----\nx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, _ := RedactString(s)
		if want := redactAll(s); got != want {
			t.Fatalf("pre-checks changed the result for %q:\n got %q\nwant %q", s, got, want)
		}
	})
}
