package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/term"

	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/signer"
)

// runVerify implements `provtrail verify`: an auditor's check of a central,
// offline over its data_dir or against a running central. It exits 0 only
// when every check passed, else 1 with each problem's exact reason.
func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify", "verify (--config central.hcl | --data-dir DIR | --url URL [--ca FILE]) [--log-key FILE] [--origin NAME] [--previous FILE] [--save-checkpoint FILE]", stdout, stderr)
	var path, dataDir, base, caFile, keyFile, origin, previous, save string
	var quiet bool
	var inclusion indexList
	fs.StringVar(&path, "config", "", "central configuration file: audit its data_dir offline")
	fs.StringVar(&dataDir, "data-dir", "", "audit this central data_dir offline")
	fs.StringVar(&base, "url", "", "audit a running central over HTTPS")
	fs.StringVar(&caFile, "ca", "", "CA certificate for --url")
	fs.StringVar(&keyFile, "log-key", "", "the log's checkpoint key: a note verifier key (as in DATA_DIR/log/"+central.LogKeyFile+") or an Ed25519 PEM public key with --origin; required with --url")
	fs.StringVar(&origin, "origin", "", "the log's origin, for a PEM --log-key")
	fs.StringVar(&previous, "previous", "", "a checkpoint saved earlier: prove the log only grew since")
	fs.StringVar(&save, "save-checkpoint", "", "write the verified checkpoint here (for the next --previous)")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	fs.Var(&inclusion, "inclusion", "prove that the batch at this log index (from an agent's receipt) is in the checkpoint; repeatable")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	n := 0
	for _, s := range []string{path, dataDir, base} {
		if s != "" {
			n++
		}
	}
	if n != 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "provtrail verify: give exactly one of --config, --data-dir and --url")
		return exitUsage
	}
	if base != "" && keyFile == "" {
		fmt.Fprintln(stderr, "provtrail verify: --url needs --log-key: the auditor must hold the log's key, not take it from the log")
		return exitUsage
	}
	if path != "" {
		cfg, code := loadCentralConfig(path, stderr)
		if cfg == nil {
			return code
		}
		dataDir = cfg.Central.DataDir
	}
	keyNote := ""
	if keyFile == "" {
		keyFile = filepath.Join(dataDir, central.LogDir, central.LogKeyFile)
		keyNote = " (taken from the data dir being audited: pass --log-key to check against a key you hold)"
	}
	v, logOrigin, err := loadLogKey(keyFile, origin)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail verify: --log-key: %v\n", err)
		return exitUsage
	}
	var prev []byte
	if previous != "" {
		if prev, err = os.ReadFile(previous); err != nil {
			fmt.Fprintf(stderr, "provtrail verify: --previous: %v\n", err)
			return exitUsage
		}
	}

	cfg := central.AuditConfig{Origin: logOrigin, Verifier: v, Previous: prev, Inclusion: inclusion}
	tty := false
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tty = true
	}
	if !quiet {
		var last time.Time
		cfg.Progress = func(p central.AuditProgress) {
			line := fmt.Sprintf("checked %d/%d log leaves, %d batches, %d events", p.Leaves, p.TreeSize, p.Batches, p.Events)
			switch {
			case tty:
				fmt.Fprint(stderr, "\r"+line)
			case time.Since(last) >= 5*time.Second:
				fmt.Fprintln(stderr, line)
				last = time.Now()
			}
		}
	}
	if base != "" {
		c, err := httpClient(caFile)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail verify: %v\n", err)
			return exitUsage
		}
		src, err := central.NewHTTPSource(base, c)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail verify: %v\n", err)
			return exitUsage
		}
		cfg.Source = src
	} else {
		if _, err := os.Stat(filepath.Join(dataDir, central.StoreFile)); err != nil {
			fmt.Fprintf(stderr, "provtrail verify: %v\n", err)
			return exitFailure
		}
		st, err := central.OpenSQLiteTool(ctx, dataDir, true)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail verify: %v\n", err)
			return exitFailure
		}
		defer st.Close()
		cfg.Source = central.NewStoreSource(dataDir, st)
		cfg.Store = st
	}
	// fsck reports through klog: keep its warnings and errors only.
	routeKlog(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	rep, err := central.Audit(ctx, cfg)
	if tty && cfg.Progress != nil {
		fmt.Fprint(stderr, "\r\033[K")
	}
	if err != nil {
		fmt.Fprintf(stderr, "provtrail verify: could not complete: %v\n", err)
		return exitFailure
	}
	printAuditReport(stdout, rep, logOrigin, keyNote, prev != nil)
	if !rep.OK() {
		return exitFailure
	}
	if save != "" {
		if err := os.WriteFile(save, rep.Checkpoint, 0o644); err != nil {
			fmt.Fprintf(stderr, "provtrail verify: --save-checkpoint: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

func printAuditReport(w io.Writer, rep *central.AuditReport, origin, keyNote string, withPrevious bool) {
	mark := func(ok bool) string {
		if ok {
			return "ok  "
		}
		return "FAIL"
	}
	ok := rep.OK()
	fmt.Fprintf(w, "log %s, checkpoint size %d, key%s\n", origin, rep.TreeSize, keyNote)
	fmt.Fprintf(w, "%s checkpoint signature\n", mark(!hasProblem(rep, "checkpoint:", "")))
	if withPrevious {
		fmt.Fprintf(w, "%s consistency with the previous checkpoint\n", mark(rep.Consistent))
	}
	for _, in := range rep.Included {
		fmt.Fprintf(w, "ok   inclusion of %s\n", in)
	}
	fmt.Fprintf(w, "%s tiles and root hash over %d leaves\n", mark(!hasProblem(rep, "log tiles", "")), rep.Leaves)
	fmt.Fprintf(w, "%s %d batch headers: signatures and chains of %d streams, bodies against digests\n", mark(ok), rep.Batches, rep.Streams)
	if rep.Events > 0 {
		fmt.Fprintf(w, "%s %d stored events against their signed bodies\n", mark(!hasProblem(rep, "event", "query index:")), rep.Events)
	}
	if rep.IndexRows > 0 {
		fmt.Fprintf(w, "%s query index: %d postings rows recomputed from the stored events\n", mark(!hasProblem(rep, "query index:", "")), rep.IndexRows)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	if ok {
		fmt.Fprintln(w, "verified: no problems found")
	} else {
		fmt.Fprintf(w, "NOT VERIFIED: %d problem(s)\n", len(rep.Problems))
	}
}

// indexList is a repeatable flag of log indexes.
type indexList []uint64

func (l *indexList) String() string { return fmt.Sprint(*l) }

func (l *indexList) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a log index", s)
	}
	*l = append(*l, n)
	return nil
}

// hasProblem reports whether a problem mentions substr, leaving out those
// that start with except (unless it is empty).
func hasProblem(rep *central.AuditReport, substr, except string) bool {
	for _, p := range rep.Problems {
		if strings.Contains(p, substr) && (except == "" || !strings.HasPrefix(p, except)) {
			return true
		}
	}
	return false
}

// loadLogKey reads a note verifier key or an Ed25519 PEM public key.
func loadLogKey(file, origin string) (note.Verifier, string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	s := strings.TrimSpace(string(data))
	if !strings.HasPrefix(s, "-----BEGIN") {
		return central.ParseVerifierKey(s)
	}
	pub, err := signer.ParsePublicKeyPEM(data)
	if err != nil {
		return nil, "", err
	}
	edpub, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, "", fmt.Errorf("%s: the log key is Ed25519, this is %T", file, pub)
	}
	if origin == "" {
		origin = central.DefaultLogOrigin
	}
	vkey, err := note.NewEd25519VerifierKey(origin, edpub)
	if err != nil {
		return nil, "", err
	}
	return central.ParseVerifierKey(vkey)
}
