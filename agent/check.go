package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	tlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/pipeline"
)

// CheckResult is one finding of Check.
type CheckResult struct {
	What   string
	OK     bool
	Detail string
}

// Check says what the agent would collect and whether it can: the state
// directory is writable, the identity key loads, each collector's source is
// readable (for collectors that can tell), and central answers. It emits
// nothing, changes no state and sends no batch.
func Check(ctx context.Context, cfg *Config, reg *collectors.Registry, opt Options) []CheckResult {
	var out []CheckResult
	add := func(what string, err error, okDetail string) {
		if err != nil {
			out = append(out, CheckResult{What: what, Detail: err.Error()})
			return
		}
		out = append(out, CheckResult{What: what, OK: true, Detail: okDetail})
	}

	add("state_dir "+cfg.Agent.StateDir, checkWritableDir(cfg.Agent.StateDir), "writable")

	a := &Agent{opt: opt}
	key, err := a.loadIdentity(ctx, cfg.Signer)
	if err == nil {
		add("identity key", nil, "loads; key id "+key.KeyID())
	} else {
		add("identity key", err, "")
	}

	scratch, err := os.MkdirTemp("", "provtrail-check-")
	if err != nil {
		add("collectors", fmt.Errorf("temporary state dir: %w", err), "")
		return out
	}
	defer os.RemoveAll(scratch)
	for _, cc := range cfg.Collectors {
		what := fmt.Sprintf("collector %s %q", cc.Type, cc.Name)
		fac, err := reg.Lookup(cc.Type)
		if err != nil {
			add(what, err, "")
			continue
		}
		dir := filepath.Join(scratch, cc.Type+"-"+cc.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			add(what, err, "")
			continue
		}
		c, err := fac.New(collectors.Settings{Type: cc.Type, Name: cc.Name, Hostname: cfg.Agent.Hostname,
			StateDir: dir, Logger: opt.Logger, Problems: collectors.ProblemFunc(func(collectors.Problem) {})}, cc.Config)
		if err != nil {
			add(what, err, "")
			continue
		}
		if ch, ok := c.(collectors.Checker); ok {
			add(what, ch.Check(ctx), "source readable")
		} else {
			add(what, nil, "configured (this source type is only reached when the agent runs)")
		}
	}

	add("central "+cfg.Forward.URL, checkCentral(ctx, cfg.Forward), "")
	if last := &out[len(out)-1]; last.OK {
		last.Detail = "reachable and healthy"
		if strings.HasPrefix(cfg.Forward.URL, "https://") {
			last.Detail = "reachable, certificate verified, healthy"
		}
	}
	if cfg.Forward.LogKeyFile != "" {
		add("log key "+cfg.Forward.LogKeyFile, checkLogKey(ctx, cfg.Forward), "central's checkpoint verifies under it")
	}
	return out
}

// checkLogKey checks that central's current checkpoint is signed by the
// configured log key: with another key every proof would fail.
func checkLogKey(ctx context.Context, fw ForwardSettings) error {
	vkey, err := os.ReadFile(fw.LogKeyFile)
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		return fmt.Errorf("not a note verifier key: %w", err)
	}
	body, err := getFromCentral(ctx, fw, "/v1/checkpoint", 64<<10)
	if err != nil {
		return fmt.Errorf("central's checkpoint: %w", err)
	}
	if _, _, _, err := tlog.ParseCheckpoint(body, v.Name(), v); err != nil {
		return fmt.Errorf("central's checkpoint does not verify under this key: %w", err)
	}
	return nil
}

func checkWritableDir(dir string) error {
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent // the agent creates state_dir; its nearest existing parent must be writable
	}
	f, err := os.CreateTemp(probe, ".provtrail-check-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", probe, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func checkCentral(ctx context.Context, fw ForwardSettings) error {
	_, err := getFromCentral(ctx, fw, "/healthz", 512)
	return err
}

// getFromCentral GETs path from central with the agent's TLS settings and
// returns at most limit bytes of a 200 answer.
func getFromCentral(ctx context.Context, fw ForwardSettings, path string, limit int64) ([]byte, error) {
	client, err := pipeline.NewHTTPClient(pipeline.TLSFiles{CAFile: fw.CAFile, CertFile: fw.CertFile, KeyFile: fw.KeyFile}, fw.Timeout)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(fw.URL, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("central url: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach central: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, limit))
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("central answered " + resp.Status + ": " + strings.TrimSpace(string(body)))
	}
	return body, nil
}
