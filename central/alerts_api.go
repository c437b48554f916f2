package central

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/provtrail/provtrail/central/alerts"
	"github.com/provtrail/provtrail/central/entitlements"
)

// AlertView is one alert in GET /v1/alerts.
type AlertView struct {
	// ID is the store's id; AlertID the engine's (stable across
	// re-evaluation). Either acknowledges the alert.
	ID       int64     `json:"id"`
	AlertID  string    `json:"alert_id,omitempty"`
	Time     time.Time `json:"time"`
	Rule     string    `json:"rule"`
	Severity string    `json:"severity"`
	Agent    string    `json:"agent,omitempty"`
	Stream   string    `json:"stream,omitempty"`
	Message  string    `json:"message"`
	Key      string    `json:"key,omitempty"`
	// Events name the events (ids and log indexes) that fired the alert.
	Events       []alerts.EventRef `json:"events,omitempty"`
	EvidenceID   int64             `json:"evidence_id,omitempty"`
	Details      map[string]string `json:"details,omitempty"`
	Acknowledged bool              `json:"acknowledged"`
	AckedAt      time.Time         `json:"acked_at,omitzero"`
	AckedBy      string            `json:"acked_by,omitempty"`
}

// NewAlertView converts a stored alert.
func NewAlertView(a Alert) AlertView {
	v := AlertView{ID: a.ID, AlertID: a.AlertID, Time: a.Time, Rule: a.Kind, Severity: a.Severity, Agent: a.AgentID,
		Stream: a.StreamID, Message: a.Message, EvidenceID: a.EvidenceID, Acknowledged: !a.AckedAt.IsZero(), AckedAt: a.AckedAt, AckedBy: a.AckedBy}
	if len(a.Details) > 0 {
		var full alerts.Alert
		if json.Unmarshal(a.Details, &full) == nil {
			v.Key, v.Events, v.Details = full.Key, full.Events, full.Details
		}
	}
	return v
}

// AlertsResponse is GET /v1/alerts.
type AlertsResponse struct {
	Alerts []AlertView `json:"alerts"`
}

// ParseAlertQuery reads an AlertQuery from URL query parameters (rule,
// severity, acknowledged=true|false, since (RFC 3339), limit).
func ParseAlertQuery(v url.Values) (AlertQuery, error) {
	q := AlertQuery{Rule: v.Get("rule"), Severity: v.Get("severity")}
	if s := v.Get("acknowledged"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return q, fmt.Errorf("acknowledged: %q is not true or false", s)
		}
		q.Acknowledged = &b
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("since: %q is not an RFC 3339 time", s)
		}
		q.Since = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit: %q is not a positive integer", s)
		}
		q.Limit = n
	}
	return q, nil
}

func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	q, err := ParseAlertQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_query", "%v", err)
		return
	}
	al, err := s.store.QueryAlerts(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", "%v", err)
		return
	}
	resp := AlertsResponse{Alerts: make([]AlertView, 0, len(al))}
	for _, a := range al {
		resp.Alerts = append(resp.Alerts, NewAlertView(a))
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleAck acknowledges an alert. It changes state, so it needs a
// verified client certificate (its subject is recorded) or a loopback
// client.
func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) {
	by := ""
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		by = "cert:" + r.TLS.VerifiedChains[0][0].Subject.String()
	} else if isLoopback(r.RemoteAddr) {
		by = "loopback"
	} else {
		writeError(w, http.StatusForbidden, "forbidden", "acknowledging alerts needs a verified client certificate or a loopback client")
		return
	}
	a, err := s.store.AckAlert(r.Context(), r.PathValue("id"), by, time.Now())
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no alert %q", truncateStr(r.PathValue("id"), 80))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "store", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, NewAlertView(a))
}

// EntitlementsResponse is GET /v1/entitlements and /v1/entitlements/drift.
type EntitlementsResponse struct {
	Entitlements []entitlements.Holding `json:"entitlements"`
}

func (s *Server) handleEntitlements(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	hs, err := s.store.Entitlements(r.Context(), EntitlementQuery{Group: v.Get("group"), User: v.Get("user"), System: v.Get("system")})
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, EntitlementsResponse{Entitlements: hs})
}

// ParseDriftRange reads from and to (RFC 3339 or a date, 2006-01-02 UTC).
func ParseDriftRange(v url.Values) (from, to time.Time, err error) {
	parse := func(k string) (time.Time, error) {
		s := v.Get(k)
		if s == "" {
			return time.Time{}, fmt.Errorf("%s is required", k)
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, nil
		}
		if t, err := time.Parse("2006-01-02", s); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("%s: %q is neither an RFC 3339 time nor a date", k, s)
	}
	if from, err = parse("from"); err != nil {
		return
	}
	if to, err = parse("to"); err != nil {
		return
	}
	if !from.Before(to) {
		err = errors.New("from must be before to")
	}
	return
}

func (s *Server) handleDrift(w http.ResponseWriter, r *http.Request) {
	from, to, err := ParseDriftRange(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_query", "%v", err)
		return
	}
	hs, err := s.store.EntitlementDrift(r.Context(), from, to)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "store", "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, EntitlementsResponse{Entitlements: hs})
}
