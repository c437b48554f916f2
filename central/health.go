package central

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/central/status"
	"github.com/provtrail/provtrail/signer"
)

// silenceLimit returns how long agent id may stay quiet before it is
// reported silent: its heartbeat interval plus the margin.
func (s *Server) silenceLimit(id string) time.Duration {
	hb := s.cfg.Central.HeartbeatInterval
	if hb <= 0 {
		hb = DefaultHeartbeatInterval
	}
	for _, a := range s.cfg.Agents {
		if a.ID == id && a.HeartbeatInterval > 0 {
			hb = a.HeartbeatInterval
		}
	}
	margin := s.cfg.Central.SilenceMargin
	if margin <= 0 {
		margin = DefaultSilenceMargin
	}
	return hb + margin
}

// watchSilence raises builtin.silent_agent once per silence for each
// active agent that sent nothing (heartbeats count) for its heartbeat
// interval plus the margin, and acknowledges it when the agent is heard
// from again. Central's own downtime does not count: silence is measured
// from central's start at the earliest.
func (s *Server) watchSilence(ctx context.Context) {
	start := time.Now()
	shortest := s.silenceLimit("")
	for _, a := range s.cfg.Agents {
		shortest = min(shortest, s.silenceLimit(a.ID))
	}
	tick := time.NewTicker(min(max(shortest/8, 50*time.Millisecond), 15*time.Second))
	defer tick.Stop()
	// silent maps an agent reported silent to the alert id and the
	// last-seen time the alert was about.
	type silence struct {
		alertID  string
		lastSeen time.Time
	}
	silent := map[string]silence{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		agents, err := s.store.Agents(ctx)
		if err != nil {
			continue
		}
		now := time.Now()
		for _, a := range agents {
			if a.Status != AgentActive {
				delete(silent, a.ID)
				continue
			}
			if prev, ok := silent[a.ID]; ok {
				if a.LastSeen.After(prev.lastSeen) {
					delete(silent, a.ID)
					s.logger.Info("agent reporting again", "agent", a.ID, "last_seen", a.LastSeen)
					if _, err := s.store.AckAlert(ctx, prev.alertID, "central: agent reported again", now); err != nil && !errors.Is(err, ErrNotFound) {
						s.logger.Warn("clear silent agent alert", "agent", a.ID, "err", err)
					}
				}
				continue
			}
			ref := a.LastSeen
			if ref.Before(start) {
				ref = start
			}
			limit := s.silenceLimit(a.ID)
			if now.Sub(ref) <= limit {
				continue
			}
			sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d", alerts.BuiltinSilentAgent, a.ID, a.LastSeen.UnixNano()))
			id := hex.EncodeToString(sum[:16])
			silent[a.ID] = silence{alertID: id, lastSeen: a.LastSeen}
			if seen, err := s.store.HasAlert(ctx, id); err != nil || seen {
				continue // raised before a restart, still silent
			}
			last := "never"
			if !a.LastSeen.IsZero() {
				last = a.LastSeen.Format(time.RFC3339)
			}
			s.metrics.alert("silent_agent")
			s.raiseBuiltin(ctx, alerts.Alert{ID: id, Rule: alerts.BuiltinSilentAgent, Severity: "high", Agent: a.ID,
				Summary: fmt.Sprintf("agent %s silent: nothing received since %s (heartbeat interval plus margin %s)", a.ID, last, limit),
				Details: map[string]string{"last_seen": last, "limit": limit.String()}})
		}
	}
}

// raiseBuiltin stores a built-in alert and sends it to every notifier
// (through the engine when alerts are configured).
func (s *Server) raiseBuiltin(ctx context.Context, a alerts.Alert) {
	s.logger.Warn("alert", "rule", a.Rule, "agent", a.Agent, "summary", a.Summary)
	if s.engine != nil {
		if err := s.engine.Raise(ctx, a); err != nil {
			s.logger.Warn("raise alert", "rule", a.Rule, "err", err)
		}
		return
	}
	a.Builtin = true
	if a.Time.IsZero() {
		a.Time = time.Now().UTC()
	}
	if err := s.store.SaveAlert(ctx, a); err != nil {
		s.logger.Warn("store alert", "rule", a.Rule, "err", err)
	}
}

// StatusResponse answers a POSTed status report.
type StatusResponse struct {
	Accepted bool `json:"accepted"`
	// Alerts is how many new alerts the report raised.
	Alerts int `json:"alerts"`
}

// handleStatus takes an agent's signed status report (status package) and
// raises builtin.source_gap and builtin.spool_full for problems it has not
// raised before.
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, err := io.ReadAll(io.LimitReader(r.Body, status.MaxEnvelope+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read", "%v", err)
		return
	}
	claimed, _, _, err := status.Open(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "malformed", "%v", err)
		return
	}
	if claimed.AgentID != id {
		writeError(w, http.StatusBadRequest, "malformed", "report is from agent %q, posted for %q", truncateStr(claimed.AgentID, 80), truncateStr(id, 80))
		return
	}
	agent, err := s.store.Agent(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusForbidden, "unknown_key", "agent %q is not enrolled", truncateStr(id, 80))
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "store", "store unavailable")
		return
	case agent.Status != AgentActive:
		writeError(w, http.StatusForbidden, "unknown_key", "agent %q is %s", id, agent.Status)
		return
	}
	pub, err := signer.ParsePublicKeyPEM(agent.PublicKey)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", "enrolled key unreadable")
		return
	}
	now := time.Now()
	rep, err := status.Verify(body, pub, s.cfg.Central.Audience, now)
	if err != nil {
		s.logger.Warn("status report refused", "agent", id, "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusForbidden, "bad_signature", "%v", err)
		return
	}
	payload, _ := json.Marshal(rep)
	if _, err := s.store.SaveStatus(r.Context(), id, rep.Created, now, payload); errors.Is(err, ErrStaleStatus) {
		writeError(w, http.StatusConflict, "stale", "%v", err)
		return
	} else if err != nil {
		writeError(w, http.StatusServiceUnavailable, "store", "%v", err)
		return
	}
	n := 0
	for _, p := range rep.Problems {
		rule, sev := alerts.BuiltinSourceGap, "high"
		what := fmt.Sprintf("source %s has a gap", p.Source)
		if p.Kind == status.KindSpoolFull {
			rule, sev = alerts.BuiltinSpoolFull, "high"
			what = "spool full"
			if p.Source != "" {
				what += " (" + p.Source + ")"
			}
		}
		since := p.Since
		if since.IsZero() {
			since = rep.Created
		}
		// One alert per occurrence: the same problem (kind, source,
		// start) in later reports raises nothing new.
		sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d\x00%s", rule, id, p.Source, since.UnixNano(), p.Detail))
		aid := hex.EncodeToString(sum[:16])
		if seen, err := s.store.HasAlert(r.Context(), aid); err != nil || seen {
			continue
		}
		msg := fmt.Sprintf("agent %s: %s since %s", id, what, since.UTC().Format(time.RFC3339))
		if p.Detail != "" {
			msg += ": " + p.Detail
		}
		s.metrics.alert(p.Kind)
		s.raiseBuiltin(r.Context(), alerts.Alert{ID: aid, Rule: rule, Severity: sev, Agent: id, Summary: msg, Time: now.UTC(),
			Details: map[string]string{"source": p.Source, "since": since.UTC().Format(time.RFC3339Nano), "reported": rep.Created.Format(time.RFC3339Nano)}})
		n++
	}
	writeJSON(w, http.StatusOK, StatusResponse{Accepted: true, Alerts: n})
}
