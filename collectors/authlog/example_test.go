package authlog_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/collectors/authlog"
)

// Parsing a Debian 12 auth.log excerpt: the sudo line names the human
// behind usermod, and the group/shadow-group twin lines are one event.
func ExampleParser() {
	const log = `2026-11-25T17:38:41.118835+00:00 vm sudo: pt_admin : TTY=pts/0 ; PWD=/tmp ; USER=root ; COMMAND=/usr/sbin/usermod -aG sudo pt_dave
2026-11-25T17:38:41.126146+00:00 vm sudo: pam_unix(sudo:session): session opened for user root(uid=0) by (uid=4322)
2026-11-25T17:38:41.133457+00:00 vm usermod[23289]: add 'pt_dave' to group 'sudo'
2026-11-25T17:38:41.140768+00:00 vm usermod[23289]: add 'pt_dave' to shadow group 'sudo'
2026-11-25T17:38:41.148079+00:00 vm sshd[23301]: Accepted publickey for deploy from 203.0.113.5 port 52211 ssh2
`
	p, err := authlog.NewParser(collectors.Settings{Name: "example"}, nil)
	if err != nil {
		panic(err)
	}
	err = p.Parse(context.Background(), strings.NewReader(log), "auth.log", collectors.EmitFunc(func(_ context.Context, recs ...collectors.Record) error {
		for _, r := range recs {
			e := r.Event
			fmt.Println(e.Time.Format("15:04:05"), e.Action, e.Target.User.Name, e.Target.Group.Name, e.Target.Privileges)
			fmt.Println("actor:", e.Actor.Name, "via", e.Actor.Auth, "as", e.Actor.OnBehalfOf)
			fmt.Println("evidence lines:", strings.Count(e.Raw, "\n")+1)
		}
		return nil
	}))
	if err != nil {
		panic(err)
	}
	// Output:
	// 17:38:41 privilege.grant pt_dave sudo [group:sudo]
	// actor: pt_admin via sudo as root
	// evidence lines: 3
}
