package norm

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/provtrail/provtrail/event"
)

// Kind is the LDAP operation of a change.
type Kind int

// Kinds of change.
const (
	KindAdd Kind = iota + 1
	KindDelete
	KindModify
	KindModRDN
)

func (k Kind) String() string {
	switch k {
	case KindAdd:
		return "add"
	case KindDelete:
		return "delete"
	case KindModify:
		return "modify"
	case KindModRDN:
		return "modrdn"
	}
	return "unknown"
}

// Modification operations, as accesslog writes them.
const (
	OpAdd       = '+'
	OpDelete    = '-'
	OpReplace   = '='
	OpIncrement = '#'
)

// Mod is one modification of one attribute. For an add, every attribute
// of the new entry is a Mod with OpAdd.
type Mod struct {
	Attr   string
	Op     byte
	Values [][]byte
}

// Change is one write to the directory, decoded from a changelog entry.
type Change struct {
	Kind Kind
	// DN is the entry changed (for a rename, its old DN); NewDN the DN
	// after a rename or move.
	DN, NewDN string
	// Actor is the DN that made the change; ActorKnown is false when the
	// source does not say (389-DS deletes).
	Actor      string
	ActorKnown bool
	// ServerActor, when ActorKnown is false, names the server itself as
	// the actor (Type system): 389-DS writes its own bookkeeping and
	// password-policy lockouts without a modifiersName.
	ServerActor string
	// ActorProxy says Actor is a server component that wrote for a client
	// the source does not name (389-DS records cn=server,cn=plugins,
	// cn=config for the Password Modify extended operation): the actor is
	// unknown, with Actor as its ID.
	ActorProxy bool
	Session    string
	Time       time.Time
	// Result is the LDAP result code; non-zero means the write failed.
	Result int
	Mods   []Mod
	// Old holds values the entry had before the change, keyed by BaseName.
	// OldKnown says the source records old values of modified attributes
	// (accesslog with logold), so an attribute missing from Old had none.
	Old      map[string][][]byte
	OldKnown bool
}

// Config says how to classify and label changes.
type Config struct {
	// Collector and Instance fill Source.
	Collector, Instance string
	// System ("openldap", "389ds") and Server (the LDAP URL or file the
	// changes came from) fill Origin.
	System, Server string
	// PrivilegedGroups are group DNs whose members hold privileges.
	PrivilegedGroups []string
	// UserClasses and GroupClasses classify entries by objectClass; empty
	// means the defaults.
	UserClasses, GroupClasses []string
	// SecretAttrs are extra attributes to redact.
	SecretAttrs []string
}

// Default object classes.
var (
	DefaultUserClasses = []string{"inetOrgPerson", "posixAccount", "person", "organizationalPerson",
		"account", "shadowAccount", "simpleSecurityObject", "inetUser", "nsPerson", "nsAccount",
		"ipaUser", "krbPrincipalAux", "sambaSamAccount", "user"}
	DefaultGroupClasses = []string{"groupOfNames", "groupOfUniqueNames", "posixGroup", "groupOfMembers",
		"groupOfURLs", "ipaUserGroup", "nestedGroup", "group", "sudoRole"}
)

// bookkeeping attributes carry no provisioning meaning.
var bookkeeping = set("entrycsn", "modifiersname", "modifytimestamp", "createtimestamp", "creatorsname",
	"entryuuid", "structuralobjectclass", "contextcsn", "entrydn", "subschemasubentry", "hassubordinates",
	"parentid", "entryid", "dsentrydn", "nsuniqueid", "passwordgraceusertime", "entryusn",
	"pwdfailuretime", "pwdgraceusetime", "pwdlastsuccess", "authtimestamp", "numsubordinates",
	"passwordretrycount", "retrycountresettime", "lastlogintime", "memberof",
	"nstombstonecsn", "nsparentuniqueid", "modifiersid", "creatorsid", "passwordexpwarned")

var memberAttrs = set("member", "uniquemember", "memberuid")

// passwordAttrs changing means the password changed.
var passwordAttrs = set("userpassword", "authpassword", "unhashed#user#password", "sambantpassword",
	"sambalmpassword", "unicodepwd", "krbprincipalkey", "ipanthash", "clearTextPassword")

func set(xs ...string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[strings.ToLower(x)] = true
	}
	return m
}

// Normaliser maps Changes to events. It is safe for concurrent use.
type Normaliser struct {
	cfg          Config
	secrets      *Secrets
	privileged   map[string]string // NormDN → DN as configured
	userClasses  map[string]bool
	groupClasses map[string]bool
	host         string
}

// New checks cfg and returns a Normaliser.
func New(cfg Config) (*Normaliser, error) {
	n := &Normaliser{cfg: cfg, secrets: NewSecrets(cfg.SecretAttrs), privileged: map[string]string{}}
	for _, g := range cfg.PrivilegedGroups {
		if _, err := ldap.ParseDN(g); err != nil {
			return nil, fmt.Errorf("privileged group %q: %w", g, err)
		}
		n.privileged[NormDN(g)] = g
	}
	uc, gc := cfg.UserClasses, cfg.GroupClasses
	if len(uc) == 0 {
		uc = DefaultUserClasses
	}
	if len(gc) == 0 {
		gc = DefaultGroupClasses
	}
	n.userClasses, n.groupClasses = set(uc...), set(gc...)
	if u, err := url.Parse(cfg.Server); err == nil && u.Hostname() != "" {
		n.host = u.Hostname()
	}
	return n, nil
}

// Server returns the configured origin instance.
func (n *Normaliser) Server() string { return n.cfg.Server }

// Secrets returns the secret-attribute policy in force.
func (n *Normaliser) Secrets() *Secrets { return n.secrets }

// NormDN returns a canonical form of dn for comparisons: lower-cased,
// spaces around separators removed, multi-valued RDNs sorted. A DN that
// does not parse is lower-cased and trimmed.
func NormDN(dn string) string {
	if n, ok := fastNormDN(dn); ok {
		return n
	}
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 {
		return strings.ToLower(strings.TrimSpace(dn))
	}
	parts := make([]string, len(d.RDNs))
	for i, r := range d.RDNs {
		avas := make([]string, len(r.Attributes))
		for j, a := range r.Attributes {
			avas[j] = strings.ToLower(a.Type) + "=" + strings.ToLower(a.Value)
		}
		sort.Strings(avas)
		parts[i] = strings.Join(avas, "+")
	}
	return strings.Join(parts, ",")
}

// simpleDN reports whether dn has none of the characters that need the
// full RFC 4514 parser (escapes, quotes, multi-valued RDNs, BER values).
func simpleDN(dn string) bool {
	return dn != "" && !strings.ContainsAny(dn, "\\\"+#;<>") && strings.Count(dn, "=") == strings.Count(dn, ",")+1
}

// fastNormDN is NormDN for simple DNs, without allocating more than the
// result.
func fastNormDN(dn string) (string, bool) {
	if !simpleDN(dn) {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(dn))
	for i, rdn := range strings.Split(dn, ",") {
		t, v, ok := strings.Cut(rdn, "=")
		t, v = strings.TrimSpace(t), strings.TrimSpace(v)
		if !ok || t == "" {
			return "", false
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strings.ToLower(t))
		b.WriteByte('=')
		b.WriteString(strings.ToLower(v))
	}
	return b.String(), true
}

// rdn returns the first RDN's attribute type (lower-cased) and value.
func rdn(dn string) (string, string) {
	if simpleDN(dn) {
		first, _, _ := strings.Cut(dn, ",")
		t, v, _ := strings.Cut(first, "=")
		return strings.ToLower(strings.TrimSpace(t)), strings.TrimSpace(v)
	}
	d, err := ldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return "", ""
	}
	a := d.RDNs[0].Attributes[0]
	return strings.ToLower(a.Type), a.Value
}

// Source identifies the record a Change came from.
type Source struct {
	// EventID is the source's own identity of the record (accesslog
	// entry DN, "changenumber=N"); IDParts are what makes event ids stable
	// (the server and the record's identity).
	EventID string
	IDParts []string
	Cursor  string
	File    string
	Raw     string
}

type class int

const (
	classOther class = iota
	classUser
	classGroup
)

// Events returns the events for ch, in a stable order. A change to an
// entry that is neither a user nor a group, or that only touches
// bookkeeping attributes, yields none.
func (n *Normaliser) Events(ch *Change, src Source, observed time.Time) []event.Event {
	b := builder{n: n, ch: ch, src: src, observed: observed}
	cls := n.classify(ch)
	switch ch.Kind {
	case KindAdd:
		b.add(cls)
	case KindDelete:
		b.delete(cls)
	case KindModRDN:
		b.rename(cls)
	case KindModify:
		b.modify(cls)
	}
	return b.out
}

func (n *Normaliser) classify(ch *Change) class {
	if _, ok := n.privileged[NormDN(ch.DN)]; ok {
		return classGroup
	}
	// The classes of an add, and old values, are the entry's whole class
	// list; an objectClass value added by a modify is one more class
	// (often auxiliary: nsMemberOf, ldapPublicKey) on an entry whose
	// other classes are not in the change, so it can make the entry a
	// user or a group but never rule that out.
	var whole, added [][]byte
	for _, m := range ch.Mods {
		if BaseName(m.Attr) == "objectclass" {
			switch {
			case ch.Kind == KindAdd:
				whole = append(whole, m.Values...)
			case m.Op == OpAdd:
				added = append(added, m.Values...)
			}
		}
	}
	whole = append(whole, ch.Old["objectclass"]...)
	isUser, isGroup := false, false
	for _, c := range slices.Concat(whole, added) {
		lc := strings.ToLower(strings.TrimSpace(string(c)))
		isGroup = isGroup || n.groupClasses[lc]
		isUser = isUser || n.userClasses[lc]
	}
	switch {
	case isGroup:
		return classGroup
	case isUser:
		return classUser
	case len(whole) > 0:
		return classOther
	}
	// No class known (389-DS deletes and modifies): membership attributes
	// mean a group, then the DN's shape decides.
	for _, m := range ch.Mods {
		if memberAttrs[BaseName(m.Attr)] {
			return classGroup
		}
	}
	t, _ := rdn(ch.DN)
	nd := NormDN(ch.DN)
	switch {
	case t == "uid":
		return classUser
	case strings.Contains(nd, ",ou=groups,") || strings.Contains(nd, ",cn=groups,"):
		return classGroup
	case t == "cn" && (strings.Contains(nd, ",ou=people,") || strings.Contains(nd, ",cn=users,")):
		return classUser
	}
	return classOther
}

type builder struct {
	n        *Normaliser
	ch       *Change
	src      Source
	observed time.Time
	out      []event.Event
}

func userOf(dn string) *event.User {
	_, v := rdn(dn)
	if v == "" {
		v = dn
	}
	if strings.TrimSpace(v) == "" {
		v = "(empty)"
	}
	return &event.User{Name: capValue(v), ID: capValue(dn)}
}

func groupOf(dn string) *event.Group {
	_, v := rdn(dn)
	if v == "" {
		v = dn
	}
	if strings.TrimSpace(v) == "" {
		v = "(empty)"
	}
	return &event.Group{Name: capValue(v), ID: capValue(dn)}
}

// capValue bounds a value copied into an event.
func capValue(v string) string {
	if len(v) <= MaxRawValue {
		return v
	}
	return v[:MaxRawValue] + " [" + itoa(len(v)) + " bytes, cut]"
}

// memberUser names a member value: a DN for member/uniqueMember (which may
// carry a "#uid" suffix), a user name for memberUid.
func memberUser(attr string, v string) *event.User {
	if attr == "memberuid" {
		if strings.TrimSpace(v) == "" {
			v = "(empty)"
		}
		return &event.User{Name: v}
	}
	if i := strings.LastIndex(v, "#'"); i > 0 {
		v = v[:i]
	}
	return userOf(v)
}

func (b *builder) actor() event.Actor {
	ch := b.ch
	if !ch.ActorKnown {
		if ch.ServerActor != "" {
			return event.Actor{Name: capValue(ch.ServerActor), Type: event.ActorSystem, Session: ch.Session}
		}
		return event.Actor{Type: event.ActorUnknown, Session: ch.Session}
	}
	dn := strings.TrimSpace(ch.Actor)
	if ch.ActorProxy {
		return event.Actor{ID: capValue(dn), Type: event.ActorUnknown, Session: capValue(ch.Session)}
	}
	if dn == "" {
		return event.Actor{Name: "anonymous", Type: event.ActorUnknown, Session: ch.Session}
	}
	a := event.Actor{ID: capValue(dn), Session: capValue(ch.Session), Type: event.ActorUnknown}
	nd := NormDN(dn)
	if strings.HasSuffix(nd, ",cn=peercred,cn=external,cn=auth") {
		// ldapi:// SASL EXTERNAL: the local uid and gid of the client.
		a.Auth = "ldapi_external"
		d, _ := ldap.ParseDN(dn)
		if d != nil && len(d.RDNs) > 0 {
			for _, av := range d.RDNs[0].Attributes {
				if strings.EqualFold(av.Type, "uidNumber") {
					if u, err := strconv.ParseInt(av.Value, 10, 64); err == nil {
						a.UID = event.Int64(u)
						a.Name = "uid=" + av.Value
						if u == 0 {
							a.Name, a.Type = "root", event.ActorSystem
						} else {
							a.Type = event.ActorHuman
						}
					}
				}
			}
		}
		return a
	}
	if strings.HasSuffix(nd, "cn=plugins,cn=config") {
		a.Type = event.ActorSystem
	}
	t, v := rdn(dn)
	a.Name = capValue(v)
	if t == "uid" {
		a.Type = event.ActorHuman
	}
	return a
}

func (b *builder) emit(action event.Action, target event.Target, changes []event.Change, key ...string) {
	outcome := event.OutcomeSuccess
	if b.ch.Result != 0 {
		outcome = event.OutcomeFailure
	}
	parts := append(append([]string{}, b.src.IDParts...), string(action))
	parts = append(parts, key...)
	e := event.Event{
		ID:           event.NewID(b.n.cfg.Collector, parts...),
		Time:         b.ch.Time,
		ObservedTime: b.observed,
		Action:       action,
		Outcome:      outcome,
		Actor:        b.actor(),
		Target:       target,
		Origin:       event.Origin{System: b.n.cfg.System, Instance: b.n.cfg.Server, Host: b.n.host},
		Changes:      changes,
		Source: event.Source{Collector: b.n.cfg.Collector, Instance: b.n.cfg.Instance, File: b.src.File,
			Cursor: b.src.Cursor, EventID: b.src.EventID},
		Raw: b.src.Raw,
	}
	if b.ch.Result != 0 {
		e.Changes = append(e.Changes, event.Change{Field: "ldap_result", New: strconv.Itoa(b.ch.Result)})
	}
	e.Complete()
	b.out = append(b.out, e)
}

// attrChanges lists the attributes of mods by name, once each, skipping
// bookkeeping; secret attributes are listed with a Redacted new value.
func (b *builder) attrChanges(mods []Mod, skip func(string) bool) []event.Change {
	var out []event.Change
	seen := map[string]bool{}
	for _, m := range mods {
		base := BaseName(m.Attr)
		if bookkeeping[base] || seen[base] || (skip != nil && skip(base)) {
			continue
		}
		seen[base] = true
		c := event.Change{Field: m.Attr}
		if i := strings.IndexByte(c.Field, ';'); i >= 0 {
			c.Field = c.Field[:i]
		}
		if b.n.secrets.IsSecret(m.Attr) && len(m.Values) > 0 {
			c.New = event.Redacted
		}
		out = append(out, c)
	}
	return out
}

func (b *builder) privileged(groupDN string) (string, bool) {
	p, ok := b.n.privileged[NormDN(groupDN)]
	return p, ok
}

func (b *builder) add(cls class) {
	ch := b.ch
	switch cls {
	case classUser:
		b.emit(event.UserCreate, event.Target{User: userOf(ch.DN)}, b.attrChanges(ch.Mods, nil))
	case classGroup:
		g := groupOf(ch.DN)
		b.emit(event.GroupCreate, event.Target{Group: g}, b.attrChanges(ch.Mods, nil))
		var adds []member
		for _, m := range ch.Mods {
			base := BaseName(m.Attr)
			if memberAttrs[base] {
				for _, v := range m.Values {
					adds = append(adds, member{attr: base, value: string(v)})
				}
			}
		}
		b.memberEvents(ch.DN, g, adds, nil)
	}
}

func (b *builder) delete(cls class) {
	ch := b.ch
	switch cls {
	case classUser:
		b.emit(event.UserDelete, event.Target{User: userOf(ch.DN)}, nil)
	case classGroup:
		g := groupOf(ch.DN)
		b.emit(event.GroupDelete, event.Target{Group: g}, nil)
		// Members of a deleted privileged group lose the privilege.
		if p, ok := b.privileged(ch.DN); ok {
			for _, attr := range []string{"member", "uniquemember", "memberuid"} {
				for _, v := range ch.Old[attr] {
					u := memberUser(attr, string(v))
					b.emit(event.PrivilegeRevoke, event.Target{User: u, Group: g, Privileges: []string{p}}, nil, attr, NormDN(string(v)))
				}
			}
		}
	}
}

func (b *builder) rename(cls class) {
	ch := b.ch
	changes := []event.Change{{Field: "dn", Old: capValue(ch.DN), New: capValue(ch.NewDN)}}
	switch cls {
	case classUser:
		u := userOf(ch.DN)
		if ch.NewDN != "" {
			u = userOf(ch.NewDN)
			u.ID = ch.NewDN
		}
		b.emit(event.UserRename, event.Target{User: u}, changes)
	case classGroup:
		g := groupOf(ch.DN)
		if ch.NewDN != "" {
			g = groupOf(ch.NewDN)
		}
		b.emit(event.GroupModify, event.Target{Group: g}, changes)
	}
}

type member struct{ attr, value string }

// memberAttrNames spells the membership attributes as their schemas do.
var memberAttrNames = map[string]string{"member": "member", "uniquemember": "uniqueMember", "memberuid": "memberUid"}

func (m member) key() string {
	if m.attr == "memberuid" {
		return m.attr + "\x00" + m.value
	}
	v := m.value
	if i := strings.LastIndex(v, "#'"); i > 0 {
		v = v[:i]
	}
	return "dn\x00" + NormDN(v)
}

func (b *builder) memberEvents(groupDN string, g *event.Group, adds, removes []member) {
	p, priv := b.privileged(groupDN)
	for _, m := range adds {
		u := memberUser(m.attr, m.value)
		b.emit(event.GroupMemberAdd, event.Target{User: u, Group: g}, []event.Change{{Field: memberAttrNames[m.attr], New: capValue(m.value)}}, m.key())
		if priv {
			b.emit(event.PrivilegeGrant, event.Target{User: u, Group: g, Privileges: []string{p}}, nil, m.key())
		}
	}
	for _, m := range removes {
		u := memberUser(m.attr, m.value)
		b.emit(event.GroupMemberRemove, event.Target{User: u, Group: g}, []event.Change{{Field: memberAttrNames[m.attr], Old: capValue(m.value)}}, m.key())
		if priv {
			b.emit(event.PrivilegeRevoke, event.Target{User: u, Group: g, Privileges: []string{p}}, nil, m.key())
		}
	}
}

// membership replays the membership modifications against the old values
// and returns what was added and removed. unknown lists attributes whose
// outcome cannot be told (a replace or delete-all without old values). It
// is linear in the number of values: big groups carry thousands.
func (b *builder) membership() (adds, removes []member, unknown []string) {
	ch := b.ch
	// Without a replace or a delete of a whole attribute, the log's adds
	// and deletes are the answer (the server refuses adding a value that
	// exists or deleting one that does not): no need to read old values.
	needOld := false
	for _, m := range ch.Mods {
		if memberAttrs[BaseName(m.Attr)] && (m.Op == OpReplace || (m.Op == OpDelete && len(m.Values) == 0)) {
			needOld = true
			break
		}
	}
	if !needOld {
		// Net effect per value, in order of first mention: an add and a
		// delete of the same value in one operation cancel out.
		net := map[string]int{}
		byKey := map[string]member{}
		var order []string
		for _, m := range ch.Mods {
			attr := BaseName(m.Attr)
			if !memberAttrs[attr] || (m.Op != OpAdd && m.Op != OpDelete) {
				continue
			}
			for _, v := range m.Values {
				mm := member{attr, string(v)}
				k := mm.key()
				if _, ok := byKey[k]; !ok {
					byKey[k] = mm
					order = append(order, k)
				}
				if m.Op == OpAdd {
					net[k] = 1
				} else {
					net[k]--
					net[k] = max(net[k], -1)
				}
			}
		}
		for _, k := range order {
			switch net[k] {
			case 1:
				adds = append(adds, byKey[k])
			case -1:
				removes = append(removes, byKey[k])
			}
		}
		return adds, removes, nil
	}
	type state struct {
		initial []member
		inInit  map[string]bool
		current map[string]member
		order   []string // keys in the order they were first set
		known   bool
	}
	states := map[string]*state{}
	var attrs []string
	get := func(attr string) *state {
		s, ok := states[attr]
		if !ok {
			s = &state{known: ch.OldKnown, inInit: map[string]bool{}, current: map[string]member{}}
			for _, v := range ch.Old[attr] {
				m := member{attr, string(v)}
				k := m.key()
				if s.inInit[k] {
					continue
				}
				s.inInit[k] = true
				s.initial = append(s.initial, m)
				s.current[k] = m
			}
			states[attr] = s
			attrs = append(attrs, attr)
		}
		return s
	}
	set := func(s *state, m member) {
		k := m.key()
		if _, ok := s.current[k]; !ok {
			s.current[k] = m
			s.order = append(s.order, k)
		}
	}
	for _, m := range ch.Mods {
		attr := BaseName(m.Attr)
		if !memberAttrs[attr] {
			continue
		}
		s := get(attr)
		switch m.Op {
		case OpAdd:
			for _, v := range m.Values {
				set(s, member{attr, string(v)})
			}
		case OpDelete:
			if len(m.Values) == 0 {
				if !s.known && len(s.initial) == 0 && !slices.Contains(unknown, attr) {
					unknown = append(unknown, attr)
				}
				clear(s.current)
				continue
			}
			for _, v := range m.Values {
				mm := member{attr, string(v)}
				k := mm.key()
				if _, ok := s.current[k]; ok {
					delete(s.current, k)
				} else if !s.known && !s.inInit[k] {
					// Removal of a value we never saw: trust the log.
					s.inInit[k] = true
					s.initial = append(s.initial, mm)
				}
			}
		case OpReplace:
			if !s.known && len(s.initial) == 0 && !slices.Contains(unknown, attr) {
				unknown = append(unknown, attr)
			}
			clear(s.current)
			for _, v := range m.Values {
				set(s, member{attr, string(v)})
			}
		}
	}
	for _, attr := range attrs {
		s := states[attr]
		if slices.Contains(unknown, attr) {
			continue
		}
		seen := map[string]bool{}
		for _, k := range s.order {
			if m, ok := s.current[k]; ok && !s.inInit[k] && !seen[k] {
				seen[k] = true
				adds = append(adds, m)
			}
		}
		for _, m := range s.initial {
			if _, ok := s.current[m.key()]; !ok {
				removes = append(removes, m)
			}
		}
	}
	return adds, removes, unknown
}

func (b *builder) modify(cls class) {
	ch := b.ch
	handled := map[string]bool{}
	if cls == classGroup {
		g := groupOf(ch.DN)
		adds, removes, unknown := b.membership()
		b.memberEvents(ch.DN, g, adds, removes)
		for a := range memberAttrs {
			handled[a] = true
		}
		changes := b.attrChanges(ch.Mods, func(base string) bool { return handled[base] && !slices.Contains(unknown, base) })
		if len(changes) > 0 {
			b.emit(event.GroupModify, event.Target{Group: g}, changes)
		}
		return
	}
	if cls != classUser {
		return
	}
	u := userOf(ch.DN)
	// Password: a value written to a password attribute, ppolicy's
	// pwdChangedTime, or pwdReset (an administrator's reset).
	pwd, reset, pwdAttr := false, false, ""
	lock, unlock := false, false
	for _, m := range ch.Mods {
		base := BaseName(m.Attr)
		switch {
		case passwordAttrs[base] && !ch.ActorKnown && ch.ServerActor != "":
			// The server rewriting a password attribute itself is a
			// re-hash (389-DS upgrades the scheme on bind), not a new
			// password: a plain modify.
			continue
		case passwordAttrs[base]:
			pwd = true
			if pwdAttr == "" || base == "userpassword" {
				pwdAttr = m.Attr
				if i := strings.IndexByte(pwdAttr, ';'); i >= 0 {
					pwdAttr = pwdAttr[:i]
				}
			}
		case base == "pwdchangedtime" || base == "pwdhistory":
			pwd = true
		case base == "pwdreset":
			if m.Op != OpDelete && len(m.Values) > 0 && strings.EqualFold(string(m.Values[0]), "TRUE") {
				reset, pwd = true, true
			}
		case base == "pwdaccountlockedtime":
			if m.Op == OpDelete || len(m.Values) == 0 {
				unlock = true
			} else {
				lock = true
			}
		case base == "accountunlocktime":
			// 389-DS password policy: the server sets it when failed
			// binds lock the account (19700101000000Z: until an
			// administrator unlocks it); deleting it unlocks.
			if m.Op != OpDelete && len(m.Values) > 0 && strings.TrimSpace(string(m.Values[0])) != "" {
				lock = true
			} else {
				unlock = true
			}
		case base == "nsaccountlock":
			if m.Op != OpDelete && len(m.Values) > 0 && strings.EqualFold(strings.TrimSpace(string(m.Values[0])), "true") {
				lock = true
			} else {
				unlock = true
			}
		default:
			continue
		}
		handled[base] = true
	}
	if pwd {
		action := event.PasswordReset
		if !reset && ch.ActorKnown && !ch.ActorProxy && ch.Actor != "" && NormDN(ch.Actor) == NormDN(ch.DN) {
			action = event.PasswordChange
		}
		if pwdAttr == "" {
			pwdAttr = "pwdChangedTime"
		}
		b.emit(action, event.Target{User: u}, []event.Change{{Field: pwdAttr, New: event.Redacted}})
	}
	switch {
	case lock:
		b.emit(event.UserLock, event.Target{User: u}, nil)
	case unlock:
		b.emit(event.UserUnlock, event.Target{User: u}, nil)
	}
	changes := b.attrChanges(ch.Mods, func(base string) bool { return handled[base] || base == "pwdreset" })
	if len(changes) > 0 {
		b.emit(event.UserModify, event.Target{User: u}, changes)
	}
}
