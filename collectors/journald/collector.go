package journald

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/collectors"
)

// maxBurst bounds how many entries are mapped at once.
const maxBurst = 512

// Collector follows the journal through a journalctl subprocess.
type Collector struct {
	set  collectors.Settings
	cfg  Config
	proc *processor
	log  *slog.Logger
}

var _ collectors.Collector = (*Collector)(nil)

// New returns a collector for cfg.
func New(set collectors.Settings, cfg *Config) (*Collector, error) {
	if diags := cfg.Validate(); diags.HasErrors() {
		return nil, diags
	}
	if set.Problems == nil {
		set.Problems = &collectors.ProblemCounter{}
	}
	proc, err := newProcessor(set, cfg.PrivilegedGroups)
	if err != nil {
		return nil, err
	}
	log := set.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{set: set, cfg: *cfg, proc: proc, log: log}, nil
}

// errEmit marks an error of the Emitter: the agent is shutting down.
type errEmit struct{ err error }

func (e errEmit) Error() string { return e.err.Error() }
func (e errEmit) Unwrap() error { return e.err }

// follow is the reading state that survives journalctl restarts.
type follow struct {
	cursor string
	// since restarts reading at a time when the cursor was refused.
	since time.Time
}

// Run follows the journal from start (a __CURSOR; nil: start_at) until ctx
// is done, restarting journalctl with backoff when it exits.
func (c *Collector) Run(ctx context.Context, start collectors.Position, out collectors.Emitter) error {
	st := &follow{cursor: string(start)}
	backoff := 250 * time.Millisecond
	for {
		began := time.Now()
		err := c.runOnce(ctx, st, out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ee errEmit
		if errors.As(err, &ee) {
			return ee.err
		}
		c.set.Problems.Report(collectors.Problem{Where: c.cfg.Journalctl, Reason: fmt.Sprintf("journalctl stopped: %v; restarting in %s", err, backoff)})
		c.log.Warn("journald: journalctl stopped", "err", err, "retry_in", backoff)
		if time.Since(began) > time.Minute {
			backoff = 250 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// args returns journalctl's command line for the reading state.
func (c *Collector) args(st *follow) []string {
	args := []string{"--output=json", "--all", "--follow", "--no-pager", "--utc"}
	if c.cfg.Namespace != "" {
		args = append(args, "--namespace="+c.cfg.Namespace)
	}
	if c.cfg.Directory != "" {
		args = append(args, "--directory="+c.cfg.Directory)
	}
	switch {
	case st.cursor != "":
		// --lines=all: without it -f applies -n 10 and skips the backlog.
		args = append(args, "--lines=all", "--after-cursor="+st.cursor)
	case !st.since.IsZero():
		args = append(args, "--lines=all", "--since=@"+strconv.FormatInt(st.since.Unix(), 10))
	case c.cfg.StartAt == "beginning":
		args = append(args, "--lines=all")
	default:
		args = append(args, "--lines=0")
	}
	return append(args, c.cfg.Matches...)
}

// cursorTime reads the realtime (t=, hex microseconds) from a cursor.
func cursorTime(cursor string) (time.Time, bool) {
	for _, part := range strings.Split(cursor, ";") {
		if v, ok := strings.CutPrefix(part, "t="); ok {
			us, err := strconv.ParseInt(v, 16, 64)
			if err == nil && us > 0 {
				return time.UnixMicro(us).UTC(), true
			}
		}
	}
	return time.Time{}, false
}

type lineOrErr struct {
	e   entry
	err error
}

// runOnce runs journalctl until it exits or ctx is done.
func (c *Collector) runOnce(ctx context.Context, st *follow, out collectors.Emitter) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(runCtx, c.cfg.Journalctl, c.args(st)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr boundedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.cfg.Journalctl, err)
	}
	lines := make(chan lineOrErr, maxBurst)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(lines)
		br := bufio.NewReaderSize(stdout, 64<<10)
		for {
			line, err := readLine(br, MaxEntryBytes)
			if errors.Is(err, errTooLong) {
				c.set.Problems.Report(collectors.Problem{Where: "journalctl", Reason: "entry longer than the limit; skipped"})
			} else if t := bytes.TrimSpace(line); len(t) > 0 {
				e, derr := decodeEntry(t)
				if derr != nil {
					c.set.Problems.Report(collectors.Problem{Where: "journalctl", Reason: "not a journal JSON entry: " + derr.Error()})
				} else {
					select {
					case lines <- lineOrErr{e: e}:
					case <-runCtx.Done():
						return
					}
				}
			}
			if err != nil && !errors.Is(err, errTooLong) {
				if err != io.EOF {
					select {
					case lines <- lineOrErr{err: err}:
					case <-runCtx.Done():
					}
				}
				return
			}
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
		cmd.Wait()
	}()

	var burst []entry
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	got := 0
	// process maps the burst. With hold set, the trailing run of one
	// process's messages stays for the next burst: its twin lines, or the
	// tool lines a sudo line announces, may still be on their way.
	process := func(hold bool) error {
		n := len(burst)
		if hold {
			n -= trailingRun(burst)
		}
		if n <= 0 {
			return nil
		}
		recs, err := c.proc.run(ctx, burst[:n], collectors.Position(st.cursor))
		if err != nil {
			return err
		}
		st.cursor, st.since = burst[n-1]["__CURSOR"], time.Time{}
		burst = append(burst[:0], burst[n:]...)
		if len(recs) > 0 {
			if err := out.Emit(ctx, recs...); err != nil {
				return errEmit{err}
			}
		}
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok := <-lines:
			if !ok || l.err != nil {
				if err := process(false); err != nil {
					return err
				}
				waitErr := cmd.Wait()
				msg := strings.TrimSpace(stderr.String())
				if got == 0 && st.cursor != "" && strings.Contains(msg, "cursor") {
					// A cursor journalctl refuses: restart at its time.
					t, ok := cursorTime(st.cursor)
					c.set.Problems.Report(collectors.Problem{Where: "cursor " + st.cursor, Reason: "journalctl refused the cursor (" + msg + "); reading again from its timestamp"})
					st.cursor = ""
					if ok {
						st.since = t
					}
				}
				if l.err != nil {
					return l.err
				}
				return fmt.Errorf("journalctl exited: %v: %s", waitErr, msg)
			}
			got++
			burst = append(burst, l.e)
			if len(burst) >= maxBurst {
				if err := process(true); err != nil {
					return err
				}
			}
			idle.Reset(c.cfg.BurstIdle)
			quiet.Reset(flushAfter)
		case <-idle.C:
			if err := process(true); err != nil {
				return err
			}
		case <-quiet.C:
			if err := process(false); err != nil {
				return err
			}
		}
	}
}

// flushAfter is how long the journal must be quiet before the held
// trailing messages of one process are mapped on their own.
const flushAfter = time.Second

// trailingRun counts the entries at the end of burst that one process
// logged through syslog (same SYSLOG_IDENTIFIER and _PID).
func trailingRun(burst []entry) int {
	last := burst[len(burst)-1]
	if last["_TRANSPORT"] == "audit" || !tools[last["SYSLOG_IDENTIFIER"]] {
		return 0
	}
	n := 0
	for i := len(burst) - 1; i >= 0; i-- {
		e := burst[i]
		if e["SYSLOG_IDENTIFIER"] != last["SYSLOG_IDENTIFIER"] || e["_PID"] != last["_PID"] || e["_TRANSPORT"] == "audit" {
			break
		}
		n++
	}
	if n == len(burst) && len(burst) >= maxBurst {
		return 0 // one process filled the burst: map it
	}
	return n
}

// boundedBuffer keeps the first 4 KiB written to it (journalctl's stderr).
type boundedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := 4096 - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
