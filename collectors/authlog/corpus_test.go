package authlog

import (
	"fmt"
	"strings"
)

// Lines for the benchmark and the "unrelated lines give nothing" test:
// what an auth file is mostly made of. Bodies are as sshd, cron,
// systemd-logind, PAM and sudo write them on Debian 12.
var noiseBodies = []struct{ prog, pid, msg string }{
	{"sshd", "41022", "Accepted publickey for deploy from 203.0.113.5 port 52211 ssh2: ED25519 SHA256:3nUZp0a5c7jYkKq0I0o1s9QeW9rJx2cJ8pXbQmVw0aE"},
	{"sshd", "41022", "pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)"},
	{"systemd-logind", "412", "New session 812 of user deploy."},
	{"sshd", "41022", "Received disconnect from 203.0.113.5 port 52211:11: disconnected by user"},
	{"sshd", "41022", "Disconnected from user deploy 203.0.113.5 port 52211"},
	{"sshd", "41022", "pam_unix(sshd:session): session closed for user deploy"},
	{"systemd-logind", "412", "Session 812 logged out. Waiting for processes to exit."},
	{"systemd-logind", "412", "Removed session 812."},
	{"sshd", "41090", "Invalid user admin from 198.51.100.7 port 40022"},
	{"sshd", "41090", "Connection closed by invalid user admin 198.51.100.7 port 40022 [preauth]"},
	{"CRON", "41101", "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"},
	{"CRON", "41101", "pam_unix(cron:session): session closed for user root"},
	{"sudo", "", "  deploy : TTY=pts/0 ; PWD=/srv/app ; USER=root ; COMMAND=/usr/bin/systemctl restart app.service"},
	{"sudo", "", "pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)"},
	{"sudo", "", "pam_unix(sudo:session): session closed for user root"},
	{"systemd", "41120", "pam_unix(systemd-user:session): session opened for user deploy(uid=1001) by (uid=0)"},
	{"sudo", "", "  deploy : TTY=pts/1 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/journalctl -u app --since today"},
	{"sshd", "41133", "Failed password for root from 192.0.2.44 port 60312 ssh2"},
	{"polkitd", "610", "Registered Authentication Agent for unix-process:41150:9912 (system bus name :1.90 [/usr/bin/pkttyagent --notify-fd 5 --fallback], object path /org/freedesktop/PolicyKit1/AuthenticationAgent, locale C.UTF-8)"},
	{"sudo", "", "  deploy : TTY=pts/0 ; PWD=/srv/app ; USER=www-data ; COMMAND=/usr/bin/php artisan migrate"},
}

// changeBodies are real change lines from the research corpus.
var changeBodies = []struct{ prog, pid, msg string }{
	{"useradd", "19571", "new group: name=pt_alice, GID=5556"},
	{"useradd", "19571", "new user: name=pt_alice, UID=1001, GID=5556, home=/home/pt_alice, shell=/bin/bash, from=none"},
	{"usermod", "20148", "add 'pt_bob' to group 'sudo'"},
	{"usermod", "20148", "add 'pt_bob' to shadow group 'sudo'"},
	{"passwd", "19903", "pam_unix(passwd:chauthtok): password changed for pt_bob"},
	{"gpasswd", "20421", "user pt_bob added by root to group pt_ops"},
	{"userdel", "3611", "delete user 'pt_bob'"},
	{"groupdel", "21204", "group 'pt_grp2' removed"},
}

// formatLine renders one body in a layout at second s of the day.
func formatLine(l layout, s int, prog, pid, msg string) string {
	hh, mm, ss := (s/3600)%24, (s/60)%60, s%60
	tag := prog + ":"
	if pid != "" {
		tag = prog + "[" + pid + "]:"
	}
	switch l {
	case layoutTraditional:
		return fmt.Sprintf("Nov 25 %02d:%02d:%02d web-01 %s %s", hh, mm, ss, tag, msg)
	case layoutRFC3339:
		return fmt.Sprintf("2026-11-25T%02d:%02d:%02d.%06d+00:00 web-01 %s %s", hh, mm, ss, (s*7919)%1000000, tag, msg)
	default:
		p := pid
		if p == "" {
			p = "-"
		}
		return fmt.Sprintf("<86>1 2026-11-25T%02d:%02d:%02d.%06d+00:00 web-01 %s %s - -  %s", hh, mm, ss, (s*7919)%1000000, prog, p, msg)
	}
}

// mixedLog returns n lines in layout l: about 99% noise, 1% changes.
func mixedLog(l layout, n int) (string, int) {
	var b strings.Builder
	changes := 0
	for i := 0; i < n; i++ {
		s := 3600 + i/20
		if i%100 == 50 {
			c := changeBodies[(i/100)%len(changeBodies)]
			b.WriteString(formatLine(l, s, c.prog, c.pid, c.msg))
			changes++
		} else {
			c := noiseBodies[i%len(noiseBodies)]
			b.WriteString(formatLine(l, s, c.prog, c.pid, c.msg))
		}
		b.WriteByte('\n')
	}
	return b.String(), changes
}
