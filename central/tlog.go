package central

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Defaults for the transparency log.
const (
	// DefaultLogBatchMaxSize and DefaultLogBatchMaxAge bound how long an
	// Add waits to be sequenced: an ack is sent once the leaf is durably
	// sequenced, so the age is the floor of ack latency.
	DefaultLogBatchMaxSize = 256
	DefaultLogBatchMaxAge  = 20 * time.Millisecond
	// DefaultCheckpointInterval is how often a new signed checkpoint is
	// published. Receipts never wait for it.
	DefaultCheckpointInterval = time.Second
)

// ErrOverloaded is returned when the log or store cannot take more work
// right now; HTTP maps it to 503 with Retry-After.
var ErrOverloaded = errors.New("central overloaded")

// ErrNotPublished is returned for a proof about an index that no published
// checkpoint covers yet.
var ErrNotPublished = errors.New("not yet covered by a published checkpoint")

// LogConfig configures the transparency log.
type LogConfig struct {
	// Dir holds the tlog-tiles layout (checkpoint, tile/, .state/).
	Dir    string
	Signer *NoteSigner
	// BatchMaxSize, BatchMaxAge and CheckpointInterval default to the
	// Default* constants when zero.
	BatchMaxSize       uint
	BatchMaxAge        time.Duration
	CheckpointInterval time.Duration
	Logger             *slog.Logger
}

// Log is the append-only RFC 6962 transparency log of accepted batch
// headers: a tessera POSIX log on local disk whose checkpoints are signed
// in the C2SP signed-note format.
type Log struct {
	appender *tessera.Appender
	shutdown func(context.Context) error
	reader   tessera.LogReader
	cancel   context.CancelFunc
	origin   string
	verifier note.Verifier
	dir      string
}

// OpenLog opens (creating if needed) the log in cfg.Dir. The log's
// background work runs until Close.
func OpenLog(ctx context.Context, cfg LogConfig) (*Log, error) {
	if cfg.Signer == nil {
		return nil, errors.New("open log: no checkpoint signer")
	}
	if cfg.BatchMaxSize == 0 {
		cfg.BatchMaxSize = DefaultLogBatchMaxSize
	}
	if cfg.BatchMaxAge == 0 {
		cfg.BatchMaxAge = DefaultLogBatchMaxAge
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	// Tessera's background goroutines live as long as this context; it is
	// cancelled in Close after the appender has shut down.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	driver, err := posix.New(bg, posix.Config{Path: cfg.Dir})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open log %s: %w", cfg.Dir, err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(cfg.Signer).
		WithBatching(cfg.BatchMaxSize, cfg.BatchMaxAge).
		WithCheckpointInterval(cfg.CheckpointInterval).
		// In-memory dedup: a header re-added while this process runs gets
		// its first index back instead of a second leaf.
		WithAntispam(1<<16, nil)
	app, shutdown, reader, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open log %s: %w", cfg.Dir, err)
	}
	l := &Log{
		appender: app,
		shutdown: shutdown,
		reader:   reader,
		cancel:   cancel,
		origin:   cfg.Signer.Name(),
		verifier: cfg.Signer.Verifier(),
		dir:      cfg.Dir,
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, LogKeyFile), []byte(cfg.Signer.VerifierKey()+"\n"), 0o644); err != nil {
		_ = l.Close(ctx)
		return nil, fmt.Errorf("open log: write verifier key: %w", err)
	}
	return l, nil
}

// EntriesFrom returns the leaves from index from up to the integrated size,
// in order (for reconciling the store with the log after a crash).
func (l *Log) EntriesFrom(ctx context.Context, from uint64) ([][]byte, error) {
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, fmt.Errorf("log size: %w", err)
	}
	var out [][]byte
	if from >= size {
		return nil, nil
	}
	getSize := func(context.Context) (uint64, error) { return size, nil }
	for b, err := range client.EntryBundles(ctx, 1, getSize, l.reader.ReadEntryBundle, from, size-from) {
		if err != nil {
			return nil, fmt.Errorf("read log entries: %w", err)
		}
		eb := &api.EntryBundle{}
		if err := eb.UnmarshalText(b.Data); err != nil {
			return nil, fmt.Errorf("read log entries: %w", err)
		}
		end := int(b.RangeInfo.First + b.RangeInfo.N)
		if end > len(eb.Entries) {
			return nil, fmt.Errorf("read log entries: bundle %d has %d entries, want %d", b.RangeInfo.Index, len(eb.Entries), end)
		}
		out = append(out, eb.Entries[b.RangeInfo.First:end]...)
	}
	return out, nil
}

// LogKeyFile is the file in the log directory holding the note verifier
// key of the checkpoint signer, for auditors who have no other copy.
const LogKeyFile = "log.vkey"

// Origin returns the log's origin line (the checkpoint signer's name).
func (l *Log) Origin() string { return l.origin }

// Verifier returns the checkpoint verifier.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// Reader gives read access to the log's tiles, entry bundles and checkpoint.
func (l *Log) Reader() tessera.LogReader { return l.reader }

// Add appends leaf and returns its index once it is durably sequenced. It
// does not wait for a checkpoint to cover the leaf. The same leaf added
// twice in one process lifetime gets the same index (dup reports that).
func (l *Log) Add(ctx context.Context, leaf []byte) (index uint64, dup bool, err error) {
	idx, err := l.appender.Add(ctx, tessera.NewEntry(leaf))()
	if err != nil {
		if errors.Is(err, tessera.ErrPushback) {
			return 0, false, fmt.Errorf("log append: %w: %w", ErrOverloaded, err)
		}
		return 0, false, fmt.Errorf("log append: %w", err)
	}
	return idx.Index, idx.IsDup, nil
}

// Checkpoint returns the latest published checkpoint, verified, and its
// raw signed-note bytes. A new log has size 0 once its first checkpoint is
// published.
func (l *Log) Checkpoint(ctx context.Context) (*log.Checkpoint, []byte, error) {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("read checkpoint: %w", ErrNotPublished)
		}
		return nil, nil, fmt.Errorf("read checkpoint: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, l.origin, l.verifier)
	if err != nil {
		return nil, nil, fmt.Errorf("parse own checkpoint: %w", err)
	}
	return cp, raw, nil
}

// InclusionProof returns the proof that the leaf at index is in the tree of
// the given size (which a published checkpoint must cover).
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("inclusion proof: index %d not below tree size %d: %w", index, size, ErrNotPublished)
	}
	pb, err := client.NewProofBuilder(ctx, size, l.reader.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	p, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof for %d at size %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of size smaller is a
// prefix of the tree of size larger.
func (l *Log) ConsistencyProof(ctx context.Context, smaller, larger uint64) ([][]byte, error) {
	if smaller > larger {
		return nil, fmt.Errorf("consistency proof: %d > %d", smaller, larger)
	}
	pb, err := client.NewProofBuilder(ctx, larger, l.reader.ReadTile)
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	p, err := pb.ConsistencyProof(ctx, smaller, larger)
	if err != nil {
		return nil, fmt.Errorf("consistency proof %d..%d: %w", smaller, larger, err)
	}
	return p, nil
}

// WaitPublished blocks until a published checkpoint covers index, and
// returns it.
func (l *Log) WaitPublished(ctx context.Context, index uint64) (*log.Checkpoint, []byte, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		cp, raw, err := l.Checkpoint(ctx)
		if err == nil && cp.Size > index {
			return cp, raw, nil
		}
		if err != nil && !errors.Is(err, ErrNotPublished) {
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
}

// Close flushes sequenced entries into a published checkpoint and stops
// the log's background work. It is safe to call more than once.
func (l *Log) Close(ctx context.Context) error {
	if l.cancel == nil {
		return nil
	}
	err := l.shutdown(ctx)
	l.cancel()
	l.cancel = nil
	if err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}

// VerifyInclusion checks an inclusion proof for leaf at index against a
// checkpoint.
func VerifyInclusion(cp *log.Checkpoint, index uint64, leaf []byte, p [][]byte) error {
	h := rfc6962.DefaultHasher
	if err := proof.VerifyInclusion(h, index, cp.Size, h.HashLeaf(leaf), p, cp.Hash); err != nil {
		return fmt.Errorf("inclusion of leaf %d in tree %d: %w", index, cp.Size, err)
	}
	return nil
}

// VerifyConsistency checks that checkpoint b extends checkpoint a.
func VerifyConsistency(a, b *log.Checkpoint, p [][]byte) error {
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, a.Size, b.Size, p, a.Hash, b.Hash); err != nil {
		return fmt.Errorf("consistency %d..%d: %w", a.Size, b.Size, err)
	}
	return nil
}
