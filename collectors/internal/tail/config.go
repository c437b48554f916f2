package tail

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// Defaults of Config.
const (
	DefaultPollInterval = time.Second
	DefaultRotateWait   = 5 * time.Second
	DefaultIdleAfter    = time.Second
	DefaultMaxLineBytes = 64 << 10
	StartBeginning      = "beginning"
	StartEnd            = "end"
)

// Config is how a Tailer follows its files. Start from DefaultConfig:
// zero PollInterval, MaxLineBytes and StartAt take the defaults, but a
// zero RotateWait or IdleAfter means no wait.
type Config struct {
	// PollInterval is the safety-net poll besides fsnotify.
	PollInterval time.Duration
	// RotateWait is how long a renamed file is drained after it has gone
	// quiet (and after the rotation was seen) before the new file is read:
	// a writer keeps writing to the old file until it reopens.
	RotateWait time.Duration
	// IdleAfter is the quiet time after which a consumer holding lines
	// back is asked to flush them.
	IdleAfter time.Duration
	// MaxLineBytes bounds a line; longer ones are reported through
	// Hooks.TooLong (or as a Problem) and skipped.
	MaxLineBytes int
	// StartAt is where a first start (no saved Position at all) reads a
	// file that exists: StartBeginning (default) or StartEnd.
	StartAt string
	// Logger gets rotations and warnings; nil discards.
	Logger *slog.Logger
	// Problems gets what the tailer cannot read (a bad saved position, a
	// read error, a file truncated below its saved offset); nil drops.
	Problems collectors.ProblemReporter
}

// DefaultConfig returns every default.
func DefaultConfig() Config {
	return Config{
		PollInterval: DefaultPollInterval,
		RotateWait:   DefaultRotateWait,
		IdleAfter:    DefaultIdleAfter,
		MaxLineBytes: DefaultMaxLineBytes,
		StartAt:      StartBeginning,
	}
}

// withDefaults returns c with the zero fields that have no meaning of
// their own set to their defaults.
func (c Config) withDefaults() Config {
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	c.RotateWait = max(c.RotateWait, 0)
	c.IdleAfter = max(c.IdleAfter, 0)
	if c.MaxLineBytes <= 0 {
		c.MaxLineBytes = DefaultMaxLineBytes
	}
	if c.StartAt == "" {
		c.StartAt = StartBeginning
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	switch {
	case c.PollInterval < 0 || c.RotateWait < 0 || c.IdleAfter < 0:
		return fmt.Errorf("tail: negative interval")
	case c.MaxLineBytes < 0:
		return fmt.Errorf("tail: negative max line bytes")
	case c.StartAt != "" && c.StartAt != StartBeginning && c.StartAt != StartEnd:
		return fmt.Errorf("tail: start at %q: want %q or %q", c.StartAt, StartBeginning, StartEnd)
	}
	return nil
}
