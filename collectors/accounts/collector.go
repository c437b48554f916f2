package accounts

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
)

// Collector diffs account-database snapshots of one root.
type Collector struct {
	set  collectors.Settings
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	keep int
}

// New returns a collector for cfg. cfg must be valid.
func New(set collectors.Settings, cfg *Config) *Collector {
	log := set.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if set.Problems == nil {
		set.Problems = &collectors.ProblemCounter{}
	}
	return &Collector{set: set, cfg: *cfg, log: log, now: time.Now, keep: DefaultKeep}
}

// position is the collector's Position: the changes from snapshot From to
// snapshot To, of which the first N were emitted.
type position struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	N    int    `json:"n"`
}

func (p position) encode() collectors.Position {
	b, _ := json.Marshal(p)
	return b
}

// run is the state of one Run call.
type run struct {
	c      *Collector
	st     *store
	rd     *reader
	diff   *differ
	out    collectors.Emitter
	base   *Snapshot
	seq    uint64 // number of base
	lastFP string
}

// Run emits the changes since start, then watches the root until ctx is
// done.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	st, err := openStore(c.set.StateDir)
	if err != nil {
		return err
	}
	r := &run{
		c:  c,
		st: st,
		rd: &reader{root: c.cfg.Root, key: st.key, sudoers: c.cfg.Sudoers, problem: func(where, reason, sample string) {
			c.set.Problems.Report(collectors.Problem{Where: where, Reason: reason, Sample: sample})
		}},
		out: out,
	}
	priv := map[string]bool{}
	for _, g := range c.cfg.PrivilegedGroups {
		priv[g] = true
	}
	r.diff = &differ{privileged: priv}
	if err := r.resume(ctx, start); err != nil {
		return err
	}
	// The first scan, waiting out a tool that is mid-update.
	for waited := time.Duration(0); ; waited += c.cfg.Debounce {
		settled, err := r.scan(ctx, waited >= MaxLockWait)
		if err != nil {
			return err
		}
		if settled {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(c.cfg.Debounce):
		}
	}
	return r.watch(ctx)
}

// resume replays the stored snapshots after the committed position, so
// that changes seen before a crash but not yet committed are emitted again
// (with the same ids).
func (r *run) resume(ctx context.Context, start collectors.Position) error {
	seqs, err := r.st.seqs()
	if err != nil {
		return err
	}
	var pos *position
	if len(start) > 0 {
		var p position
		if err := json.Unmarshal(start, &p); err != nil {
			r.problem("position", "cannot decode the start position; replaying the retained snapshots", "")
		} else {
			pos = &p
		}
	}
	has := func(n uint64) bool {
		for _, s := range seqs {
			if s == n {
				return true
			}
		}
		return false
	}
	var chain []uint64
	skip := 0
	switch {
	case len(seqs) == 0:
		if pos != nil {
			r.problem(r.st.dir, "no snapshot is stored for the start position; taking a new baseline", "")
		}
		return nil
	case pos != nil && has(pos.From) && has(pos.To):
		r.seq, skip = pos.From, pos.N
	case pos != nil && has(pos.To):
		r.seq = pos.To
		if pos.N > 0 {
			r.problem(r.st.dir, fmt.Sprintf("snapshot %d is gone; changes after the %dth of %d->%d may be lost", pos.From, pos.N, pos.From, pos.To), "")
		}
	default:
		// No position, or its snapshots were pruned: the oldest retained
		// snapshot is the best base; re-emitted events keep their ids.
		r.seq = seqs[0]
		if pos != nil {
			r.problem(r.st.dir, fmt.Sprintf("snapshots %d and %d are gone; replaying from %d", pos.From, pos.To, r.seq), "")
		}
	}
	for _, s := range seqs {
		if s > r.seq {
			chain = append(chain, s)
		}
	}
	if r.base, err = r.st.load(r.seq); err != nil {
		return err
	}
	for _, s := range chain {
		next, err := r.st.load(s)
		if err != nil {
			return err
		}
		if err := r.emit(ctx, r.base, next, r.seq, s, skip); err != nil {
			return err
		}
		skip = 0
		r.base, r.seq = next, s
	}
	return nil
}

// scan takes a snapshot and emits what changed since the last one. It
// reads nothing and returns settled=false while a shadow-utils tool holds
// a database's lock file or when a file changed during the read (a
// multi-file update half done), unless force is set: the caller retries
// after the debounce.
func (r *run) scan(ctx context.Context, force bool) (settled bool, err error) {
	if !force && r.locked() {
		return false, nil
	}
	before := r.fingerprint()
	cur, err := r.rd.take()
	if err != nil {
		r.problem(r.c.cfg.Root, "cannot read the account files: "+err.Error(), "")
		r.lastFP = before
		return true, nil // retried on the next change or poll
	}
	if !force && (r.fingerprint() != before || r.locked()) {
		return false, nil
	}
	r.lastFP = before
	return true, r.apply(ctx, cur)
}

// apply stores cur and emits its differences from the base.
func (r *run) apply(ctx context.Context, cur *Snapshot) error {
	if r.base == nil {
		// First run: this is the baseline, nothing changed yet.
		r.base, r.seq = cur, 1
		return r.st.save(r.seq, cur)
	}
	if sameContent(r.base, cur) {
		return nil
	}
	next := r.seq + 1
	if err := r.st.save(next, cur); err != nil {
		return err
	}
	if err := r.emit(ctx, r.base, cur, r.seq, next, 0); err != nil {
		return err
	}
	prev := r.seq
	r.base, r.seq = cur, next
	if err := r.st.prune(r.c.keep, prev); err != nil {
		r.c.log.Warn("accounts: pruning snapshots failed", "err", err)
	}
	return nil
}

func (r *run) emit(ctx context.Context, old, cur *Snapshot, from, to uint64, skip int) error {
	r.diff.now = r.c.now().UTC()
	found := r.diff.diff(old, cur)
	if skip >= len(found) {
		return nil
	}
	observed := r.c.now().UTC()
	recs := make([]collectors.Record, 0, len(found)-skip)
	for i := skip; i < len(found); i++ {
		ev := found[i].ev
		ev.ID = event.NewID(Type, r.c.set.Hostname, r.c.set.Name, r.st.gen, strconv.FormatUint(from, 10), strconv.FormatUint(to, 10), found[i].key)
		ev.ObservedTime = observed
		ev.Origin = event.Origin{System: "linux", Host: r.c.set.Hostname}
		ev.Source.Collector = Type
		ev.Source.Instance = r.c.set.Name
		ev.Source.File = filepath.Join(r.c.cfg.Root, filepath.FromSlash(ev.Source.File))
		ev.Source.EventID = fmt.Sprintf("snapshot:%d>%d#%d", from, to, i)
		ev.Complete()
		recs = append(recs, collectors.Record{Event: ev, Position: position{From: from, To: to, N: i + 1}.encode()})
	}
	return r.out.Emit(ctx, recs...)
}

func (r *run) problem(where, reason, sample string) {
	r.c.set.Problems.Report(collectors.Problem{Where: where, Reason: reason, Sample: sample})
}

// watch waits for changes: fsnotify on etc/ and etc/sudoers.d, debounced,
// with a poll as a safety net (a missed event, an unwatchable root).
func (r *run) watch(ctx context.Context) error {
	etc := filepath.Join(r.c.cfg.Root, "etc")
	sudoersD := filepath.Join(etc, "sudoers.d")
	w, err := fsnotify.NewWatcher()
	if err != nil {
		r.c.log.Warn("accounts: no fsnotify, polling only", "err", err)
	}
	watched := map[string]bool{}
	addWatches := func() {
		if w == nil {
			return
		}
		for _, d := range []string{etc, sudoersD} {
			if watched[d] || (d == sudoersD && !r.c.cfg.Sudoers) {
				continue
			}
			if err := w.Add(d); err == nil {
				watched[d] = true
			}
		}
	}
	var events chan fsnotify.Event
	var errs chan error
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	addWatches()
	poll := time.NewTicker(r.c.cfg.PollInterval)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	armed := false
	var armedAt time.Time
	arm := func() {
		if !armed {
			armed, armedAt = true, time.Now()
			debounce.Reset(r.c.cfg.Debounce)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			dir, name := filepath.Dir(ev.Name), filepath.Base(ev.Name)
			switch {
			case dir == sudoersD && r.c.cfg.Sudoers:
				arm()
			case dir == etc && relevant(name, r.c.cfg.Sudoers):
				if name == "sudoers.d" {
					if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
						delete(watched, sudoersD)
					}
					addWatches()
				}
				arm()
			case ev.Name == sudoersD && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)):
				delete(watched, sudoersD)
				arm()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflowed queue loses events: read everything again.
			r.c.log.Warn("accounts: watcher error", "err", err)
			arm()
		case <-debounce.C:
			// A tool holding the shadow-utils lock files is between writing
			// one database and the next: wait for it, but never longer than
			// MaxLockWait (a stale lock file must not stop the collector).
			settled, err := r.scan(ctx, time.Since(armedAt) >= MaxLockWait)
			if err != nil {
				return err
			}
			if !settled {
				debounce.Reset(r.c.cfg.Debounce)
				continue
			}
			armed = false
		case <-poll.C:
			addWatches()
			if !armed && r.fingerprint() != r.lastFP {
				arm() // through the debounce and its lock checks
			}
		}
	}
}

// MaxLockWait bounds how long a scan waits for the shadow-utils lock files
// (etc/passwd.lock ...) to go away.
const MaxLockWait = 5 * time.Second

// locked reports whether a shadow-utils tool holds one of the account
// databases open for update: commonio creates FILE.lock for that time.
func (r *run) locked() bool {
	for _, rel := range []string{relPasswd, relShadow, relGroup, relGshadow} {
		if _, err := os.Lstat(r.rd.path(rel) + ".lock"); err == nil {
			return true
		}
	}
	return false
}

func relevant(name string, sudoers bool) bool {
	switch name {
	case "passwd.lock", "shadow.lock", "group.lock", "gshadow.lock":
		return true
	case "passwd", "shadow", "group", "gshadow":
		return true
	case "sudoers", "sudoers.d":
		return sudoers
	}
	return false
}

// fingerprint summarises the identity, size and times of every file a
// snapshot reads, so that an idle poll costs a few stat calls.
func (r *run) fingerprint() string {
	var b strings.Builder
	stat := func(p string) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			b.WriteString("-;")
			return
		}
		fmt.Fprintf(&b, "%d:%d:%d:%d.%d:%d.%d;", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	}
	for _, rel := range []string{relPasswd, relShadow, relGroup, relGshadow} {
		stat(r.rd.path(rel))
	}
	if r.c.cfg.Sudoers {
		stat(r.rd.path(relSudoers))
		d := r.rd.path(relSudoersD)
		stat(d)
		if ents, err := os.ReadDir(d); err == nil {
			for _, e := range ents {
				b.WriteString(e.Name())
				stat(filepath.Join(d, e.Name()))
			}
		}
	}
	return b.String()
}
