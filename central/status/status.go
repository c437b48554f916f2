// Package status is the agent status report: a small JSON document, signed
// by the agent's identity key as a DSSE envelope, that tells central about
// problems it cannot see in the batch stream (a collector's source gap, a
// full spool). The agent POSTs it to /v1/agents/{id}/status; central
// verifies it against the enrolled key and raises builtin.source_gap or
// builtin.spool_full. docs/protocol.md §13 is the normative description.
package status

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/provtrail/provtrail/signer"
)

// PayloadType is the DSSE payload type of a status report.
const PayloadType = "application/vnd.provtrail.agent-status.v1+json"

// MediaType is the Content-Type of a POSTed status report.
const MediaType = "application/vnd.provtrail.agent-status+json"

// Limits on a report.
const (
	MaxEnvelope = 64 << 10
	MaxProblems = 64
	MaxText     = 1024
	// MaxSkew is how far a report's created time may be from central's
	// clock.
	MaxSkew = 10 * time.Minute
)

// Problem kinds.
const (
	KindSourceGap = "source_gap"
	KindSpoolFull = "spool_full"
)

// Problem is one condition the agent reports.
type Problem struct {
	// Kind is KindSourceGap or KindSpoolFull.
	Kind string `json:"kind"`
	// Source names the collector (source_gap) or the spool directory.
	Source string `json:"source,omitempty"`
	// Detail is the human-readable reason (e.g. the collector's "gap:"
	// problem reason).
	Detail string `json:"detail,omitempty"`
	// Since is when the condition started.
	Since time.Time `json:"since,omitzero"`
}

// Report is the signed payload.
type Report struct {
	V        int    `json:"v"`
	Audience string `json:"aud"`
	AgentID  string `json:"agent_id"`
	// Created is when the agent signed the report; central accepts only
	// reports newer than the last one it accepted from the agent (replay
	// protection) and within MaxSkew of its clock.
	Created  time.Time `json:"created"`
	Problems []Problem `json:"problems"`
}

type envelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

// Sign returns the DSSE envelope of r signed by the identity key.
func Sign(ctx context.Context, key signer.Signer, r Report) ([]byte, error) {
	r.V = 1
	if r.Created.IsZero() {
		r.Created = time.Now()
	}
	r.Created = r.Created.UTC()
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("status report: %w", err)
	}
	keyID, err := signer.KeyID(key.Public())
	if err != nil {
		return nil, fmt.Errorf("status report: %w", err)
	}
	sig, err := key.Sign(ctx, signer.PAE(PayloadType, payload))
	if err != nil {
		return nil, fmt.Errorf("sign status report: %w", err)
	}
	env := envelope{PayloadType: PayloadType, Payload: base64.StdEncoding.EncodeToString(payload)}
	env.Signatures = append(env.Signatures, struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	}{keyID, base64.StdEncoding.EncodeToString(sig)})
	return json.Marshal(env)
}

// Open parses an envelope without checking its signature and returns the
// report it claims, so that the caller can look up the agent's key.
func Open(data []byte) (Report, []byte, []byte, error) {
	if len(data) > MaxEnvelope {
		return Report{}, nil, nil, fmt.Errorf("status report over %d bytes", MaxEnvelope)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return Report{}, nil, nil, fmt.Errorf("status envelope: %w", err)
	}
	if env.PayloadType != PayloadType {
		return Report{}, nil, nil, fmt.Errorf("status envelope: payload type %q", truncate(env.PayloadType))
	}
	if len(env.Signatures) != 1 {
		return Report{}, nil, nil, errors.New("status envelope: want exactly one signature")
	}
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return Report{}, nil, nil, fmt.Errorf("status payload: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		return Report{}, nil, nil, fmt.Errorf("status signature: %w", err)
	}
	var r Report
	pd := json.NewDecoder(bytes.NewReader(payload))
	pd.DisallowUnknownFields()
	if err := pd.Decode(&r); err != nil {
		return Report{}, nil, nil, fmt.Errorf("status report: %w", err)
	}
	if err := r.check(); err != nil {
		return Report{}, nil, nil, err
	}
	return r, payload, sig, nil
}

// Verify parses data and checks its signature against the agent's
// identity key, its audience and its clock skew against now.
func Verify(data []byte, identity crypto.PublicKey, audience string, now time.Time) (Report, error) {
	r, payload, sig, err := Open(data)
	if err != nil {
		return Report{}, err
	}
	pae := signer.PAE(PayloadType, payload)
	if k, ok := identity.(ed25519.PublicKey); ok {
		if !ed25519.Verify(k, pae, sig) {
			return Report{}, errors.New("status report: invalid signature")
		}
	} else {
		ver, err := signature.LoadVerifier(identity, crypto.SHA256)
		if err != nil {
			return Report{}, fmt.Errorf("status report: %w", err)
		}
		if err := ver.VerifySignature(bytes.NewReader(sig), bytes.NewReader(pae)); err != nil {
			return Report{}, errors.New("status report: invalid signature")
		}
	}
	if r.Audience != audience {
		return Report{}, fmt.Errorf("status report is for audience %q", truncate(r.Audience))
	}
	if d := r.Created.Sub(now); d > MaxSkew || d < -MaxSkew {
		return Report{}, fmt.Errorf("status report created %s, more than %s from central's clock", r.Created.Format(time.RFC3339), MaxSkew)
	}
	return r, nil
}

func (r *Report) check() error {
	switch {
	case r.V != 1:
		return fmt.Errorf("status report version %d", r.V)
	case r.AgentID == "" || len(r.AgentID) > 256:
		return errors.New("status report: agent_id must be 1-256 bytes")
	case r.Created.IsZero():
		return errors.New("status report: created missing")
	case len(r.Problems) > MaxProblems:
		return fmt.Errorf("status report: more than %d problems", MaxProblems)
	}
	for _, p := range r.Problems {
		if p.Kind != KindSourceGap && p.Kind != KindSpoolFull {
			return fmt.Errorf("status report: unknown problem kind %q", truncate(p.Kind))
		}
		if len(p.Source) > MaxText || len(p.Detail) > MaxText {
			return fmt.Errorf("status report: source or detail over %d bytes", MaxText)
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
