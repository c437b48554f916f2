package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/event"
	"github.com/provtrail/provtrail/pipeline/correlate"
	"github.com/provtrail/provtrail/pipeline/positions"
	"github.com/provtrail/provtrail/pipeline/spool"
	"github.com/provtrail/provtrail/signer"
)

// Defaults for Config.
const (
	DefaultBatchMaxEvents    = 500
	DefaultBatchMaxBytes     = 4 << 20
	DefaultBatchMaxWait      = time.Second
	DefaultPositionsInterval = time.Second
	// envelopeAllowance is added to a body's size when waiting for spool
	// space: the DSSE envelope, framing and positions.
	envelopeAllowance = 8 << 10
)

// ErrStopped is returned by Emit once the pipeline is closing.
var ErrStopped = errors.New("pipeline stopped")

var errSealerStopped = errors.New("pipeline: sealer stopped")

// Sealer signs a batch body into the agent's chain and hands it to store,
// which must make it durable before returning nil; Reset starts a new
// stream (see Pipeline.Reseal). *signer.Chain implements it.
type Sealer interface {
	Seal(ctx context.Context, body []byte, meta signer.Meta, store func(context.Context, signer.Batch) error) (signer.Batch, error)
	Reset(ctx context.Context) error
	Info() signer.ChainInfo
}

// Config configures a Pipeline.
type Config struct {
	Spool     *spool.Spool
	Positions *positions.Store
	Chain     Sealer
	// A batch closes when it holds BatchMaxEvents events, when adding the
	// next event would take its NDJSON body past BatchMaxBytes, or
	// BatchMaxWait after its first event.
	BatchMaxEvents int
	BatchMaxBytes  int64
	BatchMaxWait   time.Duration
	// Heartbeat, when positive, seals an empty batch whenever no batch was
	// sealed for that long, so central can tell silence from loss.
	Heartbeat time.Duration
	// PositionsInterval is how often committed positions are written to
	// the positions file (they are durable in the spool entries before
	// that; see Recover).
	PositionsInterval time.Duration
	// Correlate configures merging of the evidence several host
	// collectors give for one change (see package correlate); nil, or
	// fewer than two collector types, turns it off.
	Correlate *correlate.Config
	Metrics   *Metrics
	Logger    *slog.Logger
}

// Pipeline takes records from collectors, redacts them, batches them,
// signs each batch into the chain and appends it to the spool together
// with the positions it covers. Forwarder takes it from there.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	m       *Metrics
	in      chan *emitBuf
	flushes chan chan error
	closing chan struct{}
	once    sync.Once
	done    chan struct{}

	// mu orders "positions set in the store" against CommitPositions.
	mu         sync.Mutex
	setThrough uint64 // highest spool index whose positions are in the store

	// free holds batch body buffers for reuse.
	free chan []byte
	// emitBufs recycles the copies Emit hands to the batching goroutine.
	emitBufs sync.Pool

	// sealMu is held while a batch is sealed into the chain and spooled,
	// and by Reseal for all of its work.
	sealMu sync.Mutex
	// corrTypes are the collector types whose records go through the
	// correlator (empty: none).
	corrTypes map[string]bool
}

// item is one record on its way to a batch: an event from a collector, or
// its encoded line.
type item struct {
	key  string
	line []byte
	ev   *event.Event
	pos  collectors.Position
	// more are positions that become safe with this item (correlator
	// output), keyed by collector instance.
	more map[string]collectors.Position
	// corr is set for records of a correlated collector type.
	corr bool
	t    time.Time
}

// New creates a pipeline. Call Recover on the spool and positions store
// first; through is the last spool index whose positions are in the store
// (Recover's result).
func New(cfg Config, through uint64) (*Pipeline, error) {
	if cfg.Spool == nil || cfg.Positions == nil || cfg.Chain == nil {
		return nil, errors.New("pipeline: Spool, Positions and Chain are required")
	}
	if cfg.BatchMaxEvents <= 0 {
		cfg.BatchMaxEvents = DefaultBatchMaxEvents
	}
	if cfg.BatchMaxBytes <= 0 {
		cfg.BatchMaxBytes = DefaultBatchMaxBytes
	}
	if cfg.BatchMaxWait <= 0 {
		cfg.BatchMaxWait = DefaultBatchMaxWait
	}
	if cfg.PositionsInterval <= 0 {
		cfg.PositionsInterval = DefaultPositionsInterval
	}
	p := &Pipeline{
		cfg: cfg, log: cfg.Logger, m: cfg.Metrics,
		in:         make(chan *emitBuf, 64),
		flushes:    make(chan chan error),
		free:       make(chan []byte, 3),
		closing:    make(chan struct{}),
		done:       make(chan struct{}),
		setThrough: through,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if c := cfg.Correlate; c != nil && len(c.Collectors) >= 2 {
		p.corrTypes = map[string]bool{}
		for _, t := range c.Collectors {
			p.corrTypes[t] = true
		}
	}
	if p.m == nil {
		p.m = NewMetrics(prometheus.NewRegistry())
	}
	return p, nil
}

// Recover makes the positions store agree with the spool after a restart.
//
// Every spool entry carries the positions it covers, and an entry may have
// been appended without the positions file being written afterwards: the
// positions of every stored entry are applied in order. The other way
// round, the positions file may name an entry the spool no longer has (its
// tail was torn or damaged and cut off at Open): such a collector is moved
// back to the newest position a surviving entry carries, so that it reads
// the lost batch's records again instead of skipping them.
//
// Recover commits the store and returns the last spool index.
func Recover(sp *spool.Spool, ps *positions.Store, log *slog.Logger) (uint64, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	last := sp.Stats().Last
	latest := map[string]positions.Entry{}
	type entryPos struct {
		index uint64
		pos   map[string]collectors.Position
	}
	var entries []entryPos
	err := sp.Scan(func(e spool.Entry, _ bool) error {
		_, pos, err := decodeEntry(e.Data)
		if err != nil {
			// Checksummed but not ours: never happens unless someone
			// wrote into the spool. Keep it; the forwarder sets it aside.
			log.Error("spool entry cannot be decoded; its positions are ignored", "index", e.Index, "err", err)
			return nil
		}
		for k, v := range pos {
			latest[k] = positions.Entry{Pos: v, Index: e.Index}
		}
		entries = append(entries, entryPos{e.Index, pos})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pipeline: recover positions from spool: %w", err)
	}
	for key, fe := range ps.All() {
		if fe.Index <= last {
			continue
		}
		if le, ok := latest[key]; ok {
			log.Warn("positions point past the spool's last batch (lost to a torn or damaged spool tail); the collector reads those records again",
				"collector", key, "lost_index", fe.Index, "resume_from_index", le.Index)
			ps.Reset(key, le)
			continue
		}
		log.Error("positions point past the spool's last batch and no surviving batch has an earlier position; records of the lost batch cannot be read again",
			"collector", key, "lost_index", fe.Index, "spool_last", last)
		ps.Reset(key, positions.Entry{Pos: fe.Pos, Index: 0})
	}
	for _, e := range entries {
		ps.Set(e.pos, e.index)
	}
	if err := ps.Commit(); err != nil {
		return 0, fmt.Errorf("pipeline: %w", err)
	}
	return last, nil
}

// LastStored returns the envelope of the newest batch in the spool, or nil
// when the spool holds none. With the forwarder's last acknowledged
// envelope as fallback it is signer.ChainConfig.LastStored.
func LastStored(sp *spool.Spool) ([]byte, error) {
	e, ok, err := sp.Newest()
	if err != nil || !ok {
		return nil, err
	}
	wire, _, err := decodeEntry(e.Data)
	if err != nil {
		return nil, err
	}
	b, err := signer.UnmarshalBatch(wire, signer.Limits{})
	if err != nil {
		return nil, fmt.Errorf("newest spool entry: %w", err)
	}
	return b.Envelope, nil
}

// EnvelopeHeader decodes the header inside a DSSE envelope without
// verifying it (the agent reads its own stored batches).
func EnvelopeHeader(env []byte) (signer.Header, error) {
	var e signer.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		return signer.Header{}, fmt.Errorf("envelope: %w", err)
	}
	return signer.ParseHeader(e.Payload)
}

// Emitter returns the Emitter for one collector instance; key is
// "TYPE/NAME" and names its positions.
func (p *Pipeline) Emitter(key string) collectors.Emitter {
	in := p.m.RecordsIn.WithLabelValues(key)
	last := p.m.LastRecord.WithLabelValues(key)
	lag := p.m.EventLag.WithLabelValues(key)
	return collectors.EmitFunc(func(ctx context.Context, recs ...collectors.Record) error {
		if n := len(recs); n > 0 {
			last.SetToCurrentTime()
			if e := &recs[n-1].Event; !e.Time.IsZero() && !e.ObservedTime.IsZero() {
				lag.Set(e.ObservedTime.Sub(e.Time).Seconds())
			}
		}
		return p.emit(ctx, key, in, recs)
	})
}

func (p *Pipeline) emit(ctx context.Context, key string, in prometheus.Counter, recs []collectors.Record) error {
	if len(recs) == 0 {
		return nil
	}
	typ, _, _ := strings.Cut(key, "/")
	correlated := p.corrTypes[typ]
	// The batching goroutine redacts and encodes, so that a busy
	// collector's parsing and the encoding run in parallel. The events are
	// copied here: Redact rewrites them in place.
	eb, _ := p.emitBufs.Get().(*emitBuf)
	if eb == nil {
		eb = &emitBuf{}
	}
	eb.fill(key, recs, correlated)
	in.Add(float64(len(recs)))
	select {
	case <-p.closing:
		return ErrStopped
	default:
	}
	select {
	case p.in <- eb:
		return nil
	default:
	}
	start := time.Now()
	defer func() { p.m.EmitBlocked.Add(time.Since(start).Seconds()) }()
	select {
	case p.in <- eb:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.closing:
		return ErrStopped
	}
}

// emitBuf carries one Emit call's records, copied, to the batching
// goroutine. Once they are encoded it goes back to Pipeline.emitBufs, so
// a steady stream of records allocates neither the copies nor their
// change lists again.
type emitBuf struct {
	items []item
	evs   []event.Event
}

func (eb *emitBuf) fill(key string, recs []collectors.Record, correlated bool) {
	n := len(recs)
	if cap(eb.evs) < n {
		eb.evs = make([]event.Event, n)
		eb.items = make([]item, n)
	}
	eb.evs, eb.items = eb.evs[:n], eb.items[:n]
	for i := range recs {
		changes := eb.evs[i].Changes[:0]
		eb.evs[i] = recs[i].Event
		eb.evs[i].Changes = append(changes, recs[i].Event.Changes...)
		eb.items[i] = item{key: key, ev: &eb.evs[i], pos: recs[i].Position, corr: correlated}
	}
}

// recycle returns eb for reuse. The correlator keeps the events of
// correlated collectors (their change lists alias eb's), so those buffers
// are left to the garbage collector.
func (p *Pipeline) recycle(eb *emitBuf) {
	if len(eb.items) > 0 && eb.items[0].corr {
		return
	}
	for i := range eb.evs {
		changes := eb.evs[i].Changes[:0]
		eb.evs[i] = event.Event{Changes: changes}
		eb.items[i] = item{}
	}
	p.emitBufs.Put(eb)
}

// encode turns an event into its NDJSON line.
func (p *Pipeline) encode(key string, ev *event.Event) (item, bool) {
	it, _, ok := p.encodeInto(nil, key, ev)
	return it, ok
}

// encodeInto appends ev's NDJSON line to buf; the item's line aliases the
// returned buffer.
func (p *Pipeline) encodeInto(buf []byte, key string, ev *event.Event) (item, []byte, bool) {
	line, err := marshalEventTo(buf, ev)
	if err != nil {
		p.m.EncodeErrors.Inc()
		p.log.Error("event cannot be encoded; skipped", "collector", key, "id", ev.ID, "err", err)
		return item{}, buf, false
	}
	line = append(line, '\n')
	t := ev.Time
	if t.IsZero() {
		t = ev.ObservedTime
	}
	return item{key: key, line: line, t: t}, line, true
}

// Run batches, seals and spools until Close is called (then it seals what
// it holds and returns nil) or ctx is cancelled (then it returns at once;
// records not yet spooled are read again after a restart, since their
// positions were not committed).
//
// Batching and sealing overlap: one goroutine builds the next batch while
// another signs and spools the previous ones, strictly in order.
func (p *Pipeline) Run(ctx context.Context) error {
	defer close(p.done)
	jobs := make(chan sealJob, 2)
	sealDead := make(chan struct{})
	var serr error
	go func() {
		defer close(sealDead)
		serr = p.sealLoop(ctx, jobs)
	}()
	berr := p.batchLoop(ctx, jobs, sealDead)
	close(jobs)
	<-sealDead
	if ctx.Err() != nil {
		// Cancelled: what was not sealed is read again after a restart.
		return nil
	}
	if berr != nil {
		return berr
	}
	if serr != nil {
		return serr
	}
	_, err := p.CommitPositions()
	return err
}

// sealJob is one batch to seal and spool, or (marker set) a point in the
// queue that Flush waits for.
type sealJob struct {
	body   []byte // nil for a heartbeat
	meta   signer.Meta
	pos    map[string]collectors.Position
	count  int
	perKey map[string]int
	marker chan error
}

// batch is the batch being built; only batchLoop touches it.
type batch struct {
	buf         bytes.Buffer
	count       int
	first, last time.Time
	pos         map[string]collectors.Position
	perKey      map[string]int
}

func (b *batch) add(it item) {
	if it.line == nil {
		// Positions that became safe without an event of their own.
		for k, v := range it.more {
			b.pos[k] = v
		}
		return
	}
	b.buf.Write(it.line)
	b.count++
	for k, v := range it.more {
		b.pos[k] = v
	}
	if !it.t.IsZero() {
		if b.first.IsZero() || it.t.Before(b.first) {
			b.first = it.t
		}
		if it.t.After(b.last) {
			b.last = it.t
		}
	}
	if it.pos != nil {
		b.pos[it.key] = it.pos
	}
	b.perKey[it.key]++
}

// correlated feeds a correlator's outputs to add as items.
func (p *Pipeline) outputs(outs []correlate.Output) []item {
	items := make([]item, 0, len(outs))
	for _, o := range outs {
		if o.Event == nil {
			items = append(items, item{more: o.Positions})
			continue
		}
		key := o.Event.Source.Collector + "/" + o.Event.Source.Instance
		it, ok := p.encode(key, o.Event)
		if !ok {
			it = item{}
		}
		it.more = o.Positions
		items = append(items, it)
	}
	return items
}

func (p *Pipeline) batchLoop(ctx context.Context, jobs chan<- sealJob, sealDead <-chan struct{}) error {
	b := &batch{pos: map[string]collectors.Position{}, perKey: map[string]int{}}
	lastEnqueue := time.Now()
	var batchTimer <-chan time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	posTick := time.NewTicker(p.cfg.PositionsInterval)
	defer posTick.Stop()
	var hbTick <-chan time.Time
	if p.cfg.Heartbeat > 0 {
		t := time.NewTicker(min(p.cfg.Heartbeat/2, time.Second))
		defer t.Stop()
		hbTick = t.C
	}
	var corr *correlate.Correlator
	corrTimer := time.NewTimer(time.Hour)
	corrTimer.Stop()
	defer corrTimer.Stop()
	var corrC <-chan time.Time
	if p.corrTypes != nil {
		corr = correlate.New(*p.cfg.Correlate)
	}
	rearm := func() {
		corrTimer.Stop()
		corrC = nil
		if d, ok := corr.NextDeadline(); ok {
			corrTimer.Reset(max(time.Until(d), 0))
			corrC = corrTimer.C
		}
	}
	enqueue := func(j sealJob) error {
		for {
			select {
			case jobs <- j:
				lastEnqueue = time.Now()
				return nil
			case <-posTick.C:
				// Backpressure can keep us here for long: keep the
				// positions file current meanwhile.
				if _, err := p.CommitPositions(); err != nil {
					p.log.Error("commit positions", "err", err)
				}
			case <-ctx.Done():
				return ctx.Err()
			case <-sealDead:
				return errSealerStopped
			}
		}
	}
	flush := func() error {
		timer.Stop()
		batchTimer = nil
		if b.count == 0 {
			return nil
		}
		body := p.takeBuf()
		body = append(body, b.buf.Bytes()...)
		meta := signer.Meta{FirstTime: b.first, LastTime: b.last}
		if meta.FirstTime.IsZero() {
			now := time.Now().UTC()
			meta.FirstTime, meta.LastTime = now, now
		}
		j := sealJob{body: body, meta: meta, pos: b.pos, count: b.count, perKey: b.perKey}
		b.buf.Reset()
		if b.buf.Cap() > 4*int(p.cfg.BatchMaxBytes) {
			b.buf = bytes.Buffer{}
		}
		b.count = 0
		b.first, b.last = time.Time{}, time.Time{}
		b.pos = map[string]collectors.Position{}
		b.perKey = map[string]int{}
		return enqueue(j)
	}
	var addLines func(items []item) error
	var scratch []byte
	var one [1]item
	add := func(items []item) error {
		// Secrets go before anything else sees the events.
		for _, it := range items {
			if n := Redact(it.ev); n > 0 {
				p.m.Redactions.Add(float64(n))
			}
		}
		if corr != nil && items[0].corr {
			// A correlated collector's records: one Add per Emit call.
			recs := make([]collectors.Record, len(items))
			for i, it := range items {
				recs[i] = collectors.Record{Event: *it.ev, Position: it.pos}
			}
			err := addLines(p.outputs(corr.Add(time.Now(), items[0].key, recs)))
			rearm()
			return err
		}
		// Encode into one scratch buffer; the batch copies each line.
		for _, it := range items {
			var ok bool
			var e item
			if e, scratch, ok = p.encodeInto(scratch[:0], it.key, it.ev); !ok {
				continue
			}
			e.pos = it.pos
			one[0] = e
			if err := addLines(one[:]); err != nil {
				return err
			}
		}
		return nil
	}
	releaseAll := func() error {
		if corr == nil {
			return nil
		}
		err := addLines(p.outputs(corr.Flush(time.Now())))
		rearm()
		return err
	}
	addLines = func(items []item) error {
		for _, it := range items {
			if b.count > 0 && int64(b.buf.Len()+len(it.line)) > p.cfg.BatchMaxBytes {
				if err := flush(); err != nil {
					return err
				}
			}
			b.add(it)
			if b.count == 1 && it.line != nil {
				timer.Reset(p.cfg.BatchMaxWait)
				batchTimer = timer.C
			}
			if b.count >= p.cfg.BatchMaxEvents || int64(b.buf.Len()) >= p.cfg.BatchMaxBytes {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	drainIn := func() error {
		for {
			select {
			case eb := <-p.in:
				err := add(eb.items)
				p.recycle(eb)
				if err != nil {
					return err
				}
			default:
				return nil
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sealDead:
			return errSealerStopped
		case <-p.closing:
			// Take what collectors already handed over and queue it.
			if err := drainIn(); err != nil {
				return err
			}
			if err := releaseAll(); err != nil {
				return err
			}
			return flush()
		case eb := <-p.in:
			err := add(eb.items)
			p.recycle(eb)
			if err != nil {
				return err
			}
		case reply := <-p.flushes:
			err := drainIn()
			if err == nil {
				err = releaseAll()
			}
			if err == nil {
				err = flush()
			}
			if err == nil {
				err = enqueue(sealJob{marker: reply})
			}
			if err != nil {
				reply <- err
				return err
			}
		case <-corrC:
			corrC = nil
			if err := addLines(p.outputs(corr.Expire(time.Now()))); err != nil {
				return err
			}
			rearm()
		case <-batchTimer:
			if err := flush(); err != nil {
				return err
			}
		case <-posTick.C:
			if _, err := p.CommitPositions(); err != nil {
				p.log.Error("commit positions", "err", err)
			}
		case <-hbTick:
			if b.count == 0 && time.Since(lastEnqueue) >= p.cfg.Heartbeat {
				if err := enqueue(sealJob{}); err != nil {
					return err
				}
			}
		}
	}
}

func (p *Pipeline) takeBuf() []byte {
	select {
	case b := <-p.free:
		return b[:0]
	default:
		return nil
	}
}

func (p *Pipeline) putBuf(b []byte) {
	if b == nil || cap(b) > 2*int(p.cfg.BatchMaxBytes) {
		return
	}
	select {
	case p.free <- b:
	default:
	}
}

// sealLoop seals and spools queued batches in order until jobs is closed
// (nil) or ctx ends (ctx's error).
func (p *Pipeline) sealLoop(ctx context.Context, jobs <-chan sealJob) error {
	for j := range jobs {
		if j.marker != nil {
			j.marker <- nil
			continue
		}
		if err := p.seal(ctx, j); err != nil {
			// Only ctx ending stops seal; drain the queue's markers.
			for j := range jobs {
				if j.marker != nil {
					j.marker <- err
				}
			}
			return err
		}
		p.putBuf(j.body)
	}
	return nil
}

// seal signs one batch (a heartbeat when it is empty) and spools it. A
// failure other than ctx ending is retried with backoff: the batch stays
// in memory and collectors wait, so nothing is skipped.
func (p *Pipeline) seal(ctx context.Context, j sealJob) error {
	body := j.body
	if j.count == 0 {
		body = nil
	}
	backoff := 100 * time.Millisecond
	for {
		if err := p.cfg.Spool.WaitForSpace(ctx, len(body)+envelopeAllowance); err != nil {
			return fmt.Errorf("pipeline: wait for spool space: %w", err)
		}
		// sealMu is never held while waiting for space: a Reseal, which
		// makes the space, may need it meanwhile. A full spool fails the
		// seal without advancing the chain, and it is tried again.
		p.sealMu.Lock()
		need := 0
		_, err := p.cfg.Chain.Seal(ctx, body, j.meta, func(ctx context.Context, b signer.Batch) error {
			var err error
			_, need, err = p.spoolBatch(b, j.pos, p.cfg.Spool.Append)
			return err
		})
		p.sealMu.Unlock()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pipeline: seal: %w", ctx.Err())
		}
		if errors.Is(err, spool.ErrFull) {
			if err := p.cfg.Spool.WaitForSpace(ctx, need); err != nil {
				return fmt.Errorf("pipeline: wait for spool space: %w", err)
			}
			continue
		}
		p.m.SealErrors.Inc()
		p.log.Error("cannot sign or spool a batch; retrying (collectors wait meanwhile)",
			"events", j.count, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("pipeline: seal: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	if j.count == 0 {
		p.m.Batches.WithLabelValues("heartbeat").Inc()
	} else {
		p.m.Batches.WithLabelValues("events").Inc()
		p.m.BatchEvents.Observe(float64(j.count))
		for k, n := range j.perKey {
			p.m.RecordsOut.WithLabelValues(k).Add(float64(n))
		}
	}
	return nil
}

// CommitPositions writes the positions store and returns the highest
// spool index whose positions are now in the positions file. The
// forwarder acknowledges spool entries only up to that index, so that a
// segment is never removed while the positions it holds exist nowhere
// else.
func (p *Pipeline) CommitPositions() (uint64, error) {
	p.mu.Lock()
	through := p.setThrough
	p.mu.Unlock()
	if err := p.cfg.Positions.Commit(); err != nil {
		return 0, err
	}
	return through, nil
}

// Flush seals and spools every record emitted before the call, so that
// the positions store holds the positions of all of them (the agent calls
// it before restarting a collector, which then resumes from there).
func (p *Pipeline) Flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case p.flushes <- reply:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		return ErrStopped
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-p.done:
		select {
		case err := <-reply:
			return err
		default:
			return ErrStopped
		}
	}
}

// Close asks Run to seal what it holds and return; Emit returns ErrStopped
// from now on. It does not wait; see Done.
func (p *Pipeline) Close() { p.once.Do(func() { close(p.closing) }) }

// Done is closed when Run has returned.
func (p *Pipeline) Done() <-chan struct{} { return p.done }
