package agent

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/pipeline/spool"
	"github.com/provtrail/provtrail/signer"
)

// Agent status reports (protocol v1): problems central cannot see in the
// batch stream, a collector's source gap (a Problem whose Reason starts
// with "gap:") and a full spool, signed by the identity key as a DSSE
// envelope and POSTed to {forward.url}/v1/agents/{id}/status. Central
// verifies them against the enrolled key and raises builtin.source_gap and
// builtin.spool_full. The encoding is the one central/status reads; the
// agent keeps its own writer so that it does not import central.
const (
	statusPayloadType = "application/vnd.provtrail.agent-status.v1+json"
	statusMediaType   = "application/vnd.provtrail.agent-status+json"
	statusMaxProblems = 64
	statusMaxText     = 1024
	// statusCheck is how often the reporter looks for something to report.
	statusCheck = 5 * time.Second
)

type statusProblem struct {
	Kind   string    `json:"kind"`
	Source string    `json:"source,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Since  time.Time `json:"since,omitzero"`
}

type statusReport struct {
	V        int             `json:"v"`
	Audience string          `json:"aud"`
	AgentID  string          `json:"agent_id"`
	Created  time.Time       `json:"created"`
	Problems []statusProblem `json:"problems"`
}

type statusEnvelope struct {
	PayloadType string            `json:"payloadType"`
	Payload     string            `json:"payload"`
	Signatures  []statusSignature `json:"signatures"`
}

type statusSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// signStatus returns the DSSE envelope of r signed by key.
func signStatus(ctx context.Context, key signer.Signer, r statusReport) ([]byte, error) {
	r.V = 1
	r.Created = r.Created.UTC()
	if r.Problems == nil {
		r.Problems = []statusProblem{}
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("status report: %w", err)
	}
	keyID, err := signer.KeyID(key.Public())
	if err != nil {
		return nil, fmt.Errorf("status report: %w", err)
	}
	sig, err := key.Sign(ctx, signer.PAE(statusPayloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("sign status report: %w", err)
	}
	return json.Marshal(statusEnvelope{
		PayloadType: statusPayloadType,
		Payload:     base64.StdEncoding.EncodeToString(payload),
		Signatures:  []statusSignature{{KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)}},
	})
}

func clip(s string) string {
	if len(s) > statusMaxText {
		return s[:statusMaxText]
	}
	return s
}

// statusReporter collects source gaps and watches the spool, and reports
// them to central until central has taken each one.
type statusReporter struct {
	url, audience, agentID string
	key                    signer.Signer
	client                 *http.Client
	sp                     *spool.Spool
	log                    *slog.Logger

	mu      sync.Mutex
	gaps    []statusProblem // not yet accepted by central
	last    time.Time       // created time of the last report sent
	spoolAt time.Time       // FullSince of the spool-full episode already reported
	wake    chan struct{}
}

func newStatusReporter(url, audience, agentID string, key signer.Signer, client *http.Client, sp *spool.Spool, log *slog.Logger) *statusReporter {
	return &statusReporter{url: strings.TrimRight(url, "/"), audience: audience, agentID: agentID, key: key,
		client: client, sp: sp, log: log, wake: make(chan struct{}, 1)}
}

// gap records a collector's source gap for the next report.
func (s *statusReporter) gap(source, reason string) {
	s.mu.Lock()
	if len(s.gaps) < statusMaxProblems-1 {
		s.gaps = append(s.gaps, statusProblem{Kind: "source_gap", Source: clip(source), Detail: clip(reason), Since: time.Now().UTC()})
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run reports until ctx ends.
func (s *statusReporter) run(ctx context.Context) {
	t := time.NewTicker(statusCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		s.report(ctx)
	}
}

// report sends what is pending, if anything: the gaps central has not
// accepted yet, and a spool-full episode it has not heard of.
func (s *statusReporter) report(ctx context.Context) {
	st := s.sp.Stats()
	s.mu.Lock()
	problems := append([]statusProblem(nil), s.gaps...)
	nGaps := len(problems)
	if st.Full && !st.FullSince.Equal(s.spoolAt) {
		problems = append(problems, statusProblem{Kind: "spool_full", Source: "spool",
			Detail: fmt.Sprintf("%d of %d bytes, %d batches not acknowledged; collection paused", st.Bytes, st.Max, st.Pending),
			Since:  st.FullSince.UTC()})
	}
	created := time.Now().UTC()
	if !created.After(s.last) {
		created = s.last.Add(time.Microsecond)
	}
	s.mu.Unlock()
	if len(problems) == 0 {
		return
	}
	env, err := signStatus(ctx, s.key, statusReport{Audience: s.audience, AgentID: s.agentID, Created: created, Problems: problems})
	if err != nil {
		s.log.Error("status report", "err", err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/agents/"+s.agentID+"/status", bytes.NewReader(env))
	if err != nil {
		s.log.Error("status report", "err", err)
		return
	}
	req.Header.Set("Content-Type", statusMediaType)
	resp, err := s.client.Do(req)
	if err != nil {
		s.log.Warn("cannot send status report to central; will retry", "problems", len(problems), "err", err)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = created
	if resp.StatusCode != http.StatusOK {
		s.log.Warn("central refused the status report; will retry", "status", resp.StatusCode, "answer", strings.TrimSpace(string(body)))
		return
	}
	s.gaps = s.gaps[nGaps:]
	if len(problems) > nGaps {
		s.spoolAt = st.FullSince
	}
	s.log.Info("status report delivered", "problems", len(problems))
}
