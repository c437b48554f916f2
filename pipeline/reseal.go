package pipeline

import (
	"context"
	"fmt"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/pipeline/spool"
	"github.com/provtrail/provtrail/signer"
)

// spoolBatch appends a sealed batch with the positions it covers and
// records the positions as safe at its index. On an error, size is the
// entry's length (what a full spool must make room for).
func (p *Pipeline) spoolBatch(b signer.Batch, pos map[string]collectors.Position, appendEntry func([]byte) (uint64, error)) (idx uint64, size int, err error) {
	wire, err := signer.MarshalBatch(b)
	if err != nil {
		return 0, 0, err
	}
	entry := encodeEntry(wire, pos)
	idx, err = appendEntry(entry)
	if err != nil {
		return 0, len(entry), err
	}
	p.mu.Lock()
	p.cfg.Positions.Set(pos, idx)
	p.setThrough = idx
	p.mu.Unlock()
	return idx, len(entry), nil
}

// Superseded describes a spooled entry that Reseal replaced: the entry,
// the batch header it held, and the index of its re-signed copy (0 for a
// heartbeat, which is not copied). Err is set, and Header zero, for an
// entry that could not be read; it is not copied either.
type Superseded struct {
	Entry  spool.Entry
	Header signer.Header
	CopyAt uint64
	Err    error
}

// Reseal abandons the chain's stream and re-signs, in order, the events of
// every spooled entry from index from on into a new stream (seq 0 signed by
// the identity key, prev_stream naming the old one), appending the copies
// with the same positions. It is the way out when central reports a gap
// this agent cannot fill: the seqs central misses were acknowledged before
// (central lost them, for example restored from a backup) or lost from the
// spool, so central would never store another batch of the old stream.
// Central sees the new stream and the gap, and alerts on both; the events
// reach it once (it also de-duplicates events by id).
//
// done is called for each replaced entry once its copy is durable, in
// index order; the forwarder acknowledges the entry there, which is what
// makes room in a full spool (copies may exceed spool_max_bytes by one
// segment meanwhile). New batches wait until Reseal returns. A crash
// part-way leaves old entries not yet replaced (and, as acknowledgements
// are not fsynced on their own, perhaps some replaced) next to copies not
// yet sent: the next gap reseals all of them into yet another stream.
// Nothing is lost; some events may then reach central twice, which it
// stores once, and out of their first order.
func (p *Pipeline) Reseal(ctx context.Context, from uint64, done func(Superseded) error) error {
	p.sealMu.Lock()
	defer p.sealMu.Unlock()

	newest, ok, err := p.cfg.Spool.Newest()
	if err != nil {
		return fmt.Errorf("pipeline: reseal: %w", err)
	}
	if !ok || newest.Index < from {
		return nil
	}
	old := p.cfg.Chain.Info()
	if err := p.cfg.Chain.Reset(ctx); err != nil {
		return fmt.Errorf("pipeline: reseal: %w", err)
	}
	now := p.cfg.Chain.Info()
	p.log.Warn("re-signing spooled batches into a new stream", "old_stream", old.StreamID, "new_stream", now.StreamID,
		"from_index", from, "through_index", newest.Index)
	cursor := from - 1
	for {
		e, err := p.cfg.Spool.Next(ctx, cursor)
		if err != nil {
			return fmt.Errorf("pipeline: reseal: %w", err)
		}
		if e.Index > newest.Index {
			return nil
		}
		cursor = e.Index
		sup := Superseded{Entry: e}
		wire, pos, err := decodeEntry(e.Data)
		var b signer.Batch
		var raw []byte
		if err == nil {
			b, err = signer.UnmarshalBatch(wire, signer.Limits{})
		}
		if err == nil {
			sup.Header, raw, err = signer.OpenBody(b, signer.Limits{})
		}
		switch {
		case err != nil:
			// Checksummed but unreadable: nothing to copy; done keeps
			// it aside as the forwarder does any unreadable entry.
			sup.Err = err
		case sup.Header.Events > 0:
			meta := signer.Meta{FirstTime: sup.Header.FirstTime, LastTime: sup.Header.LastTime}
			_, err = p.cfg.Chain.Seal(ctx, raw, meta, func(_ context.Context, nb signer.Batch) error {
				sup.CopyAt, _, err = p.spoolBatch(nb, pos, p.cfg.Spool.AppendBeyond)
				return err
			})
			if err != nil {
				return fmt.Errorf("pipeline: reseal entry %d: %w", e.Index, err)
			}
			p.m.Batches.WithLabelValues("resealed").Inc()
		}
		if err := done(sup); err != nil {
			return fmt.Errorf("pipeline: reseal entry %d: %w", e.Index, err)
		}
	}
}
