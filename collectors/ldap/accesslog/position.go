package accesslog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/provtrail/provtrail/collectors"
)

// position is the collector's resume point. Cookie is the server's last
// sync cookie that covers only fully emitted entries; CSN holds, per
// server id, the entryCSN of the newest log entry read (CSNs order commits
// and are unique); Part > 0 says that only the first Part events of the
// entry at Last were emitted.
type position struct {
	V      int               `json:"v"`
	Cookie []byte            `json:"cookie,omitempty"`
	CSN    map[string]string `json:"csn,omitempty"`
	Last   string            `json:"last,omitempty"`
	Part   int               `json:"part,omitempty"`
}

func decodePosition(p collectors.Position) (position, error) {
	pos := position{V: 1}
	if len(p) == 0 {
		return pos, nil
	}
	if err := json.Unmarshal(p, &pos); err != nil {
		return position{V: 1}, fmt.Errorf("ldap_accesslog position: %w", err)
	}
	if pos.V != 1 {
		return position{V: 1}, fmt.Errorf("ldap_accesslog position version %d is not 1", pos.V)
	}
	return pos, nil
}

func (p position) encode() collectors.Position {
	b, _ := json.Marshal(p)
	return b
}

func (p position) clone() position {
	q := p
	q.Cookie = slices.Clone(p.Cookie)
	q.CSN = make(map[string]string, len(p.CSN))
	for k, v := range p.CSN {
		q.CSN[k] = v
	}
	return q
}

// csnSID returns the server id field of a CSN
// "YYYYmmddHHMMSS.ffffffZ#count#sid#mod".
func csnSID(csn string) string {
	parts := strings.Split(csn, "#")
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}

// emitted returns how many events of the entry at csn were already
// emitted: -1 for all of them, 0 for none.
func (p position) emitted(csn string) int {
	if csn == "" {
		return 0
	}
	last, ok := p.CSN[csnSID(csn)]
	switch {
	case !ok || csn > last:
		return 0
	case csn == last && p.Last == csn && p.Part > 0:
		return p.Part
	}
	return -1
}

// syncCookie is the cookie to resume with: the stored one, or one made
// from the stored CSNs when the server never sent one after an entry we
// finished (an interrupted first refresh).
func (p position) syncCookie() []byte {
	if len(p.Cookie) > 0 {
		return p.Cookie
	}
	if len(p.CSN) == 0 || p.Part > 0 {
		return nil
	}
	// OpenLDAP lists one CSN per server id, ordered by server id.
	sids := make([]string, 0, len(p.CSN))
	for sid := range p.CSN {
		sids = append(sids, sid)
	}
	slices.Sort(sids)
	csns := make([]string, len(sids))
	for i, sid := range sids {
		csns[i] = p.CSN[sid]
	}
	return []byte("rid=000,csn=" + strings.Join(csns, ";"))
}

// oldest returns the smallest stored CSN, the lower bound of a poll.
func (p position) oldest() string {
	o := ""
	for _, v := range p.CSN {
		if o == "" || v < o {
			o = v
		}
	}
	return o
}
