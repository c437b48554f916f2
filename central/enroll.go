package central

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/provtrail/provtrail/signer"
)

// TokenPrefix starts every enrollment token, so a leaked one is easy to
// recognise.
const TokenPrefix = "ptenroll_"

// NewEnrollToken creates a token usable uses times until ttl passes and
// stores its hash. The token itself is returned once and never stored.
func NewEnrollToken(ctx context.Context, store Store, uses int, ttl time.Duration, requireApproval bool, note string) (string, error) {
	if uses < 1 {
		return "", errors.New("enrollment token: uses must be at least 1")
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := time.Now()
	t := EnrollToken{Hash: hashToken(tok), UsesLeft: uses, RequireApproval: requireApproval, CreatedAt: now, Note: note}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	if err := store.CreateToken(ctx, t); err != nil {
		return "", err
	}
	return tok, nil
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// EnrollRequest is the body of POST /v1/enroll.
type EnrollRequest struct {
	Token   string `json:"token"`
	AgentID string `json:"agent_id"`
	// PublicKey is the agent's identity public key, PEM.
	PublicKey string `json:"public_key"`
	Hostname  string `json:"hostname,omitempty"`
	// Proof is the identity key's signature over EnrollChallenge, proving
	// the agent holds the private key.
	Proof []byte `json:"proof"`
}

// EnrollResponse is the answer to POST /v1/enroll.
type EnrollResponse struct {
	AgentID  string      `json:"agent_id"`
	Status   AgentStatus `json:"status"`
	Audience string      `json:"audience"`
	KeyID    string      `json:"key_id"`
}

// EnrollChallenge is the message an enrolling agent signs.
func EnrollChallenge(agentID, token string) []byte {
	return fmt.Appendf(nil, "provtrail-enroll-v1\n%s\n%s\n", agentID, hex.EncodeToString(hashToken(token)))
}

var agentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// verifyProof checks sig over msg by pub, as signer.PrivateKey.Sign makes
// it (pure Ed25519, or ECDSA P-256 over SHA-256, ASN.1).
func verifyProof(pub crypto.PublicKey, msg, sig []byte) bool {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, d[:], sig)
	}
	return false
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req EnrollRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed", "enroll request: %v", err)
		return
	}
	resp, status, err := Enroll(r.Context(), s.store, s.cfg.Central.Audience, req, time.Now())
	if err != nil {
		writeError(w, status, "enroll_refused", "%v", err)
		return
	}
	s.logger.Info("agent enrolled", "agent", resp.AgentID, "status", resp.Status, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, resp)
}

// Enroll checks an enrollment request and records the agent. It returns
// the HTTP status to answer with on error.
func Enroll(ctx context.Context, store Store, audience string, req EnrollRequest, now time.Time) (EnrollResponse, int, error) {
	if !agentIDPattern.MatchString(req.AgentID) {
		return EnrollResponse{}, http.StatusBadRequest, errors.New("agent_id must be 1-128 letters, digits, '.', '_' or '-'")
	}
	if !strings.HasPrefix(req.Token, TokenPrefix) {
		return EnrollResponse{}, http.StatusForbidden, ErrTokenInvalid
	}
	pub, err := signer.ParsePublicKeyPEM([]byte(req.PublicKey))
	if err != nil {
		return EnrollResponse{}, http.StatusBadRequest, fmt.Errorf("public_key: %w", err)
	}
	if !verifyProof(pub, EnrollChallenge(req.AgentID, req.Token), req.Proof) {
		return EnrollResponse{}, http.StatusForbidden, errors.New("proof does not verify: the request must be signed by the enrolled key")
	}
	pem, err := signer.MarshalPublicKeyPEM(pub)
	if err != nil {
		return EnrollResponse{}, http.StatusBadRequest, err
	}
	tok, err := store.UseToken(ctx, hashToken(req.Token), now, Agent{ID: req.AgentID, PublicKey: pem, Source: "token", Hostname: truncateStr(req.Hostname, 255), EnrolledAt: now})
	switch {
	case errors.Is(err, ErrTokenInvalid):
		return EnrollResponse{}, http.StatusForbidden, err
	case errors.Is(err, ErrAgentExists):
		return EnrollResponse{}, http.StatusConflict, err
	case err != nil:
		return EnrollResponse{}, http.StatusServiceUnavailable, err
	}
	kid, _ := signer.KeyID(pub)
	status := AgentActive
	if tok.RequireApproval {
		status = AgentPending
	}
	return EnrollResponse{AgentID: req.AgentID, Status: status, Audience: audience, KeyID: kid}, http.StatusOK, nil
}

// SignEnrollRequest builds an enrollment request signed by key.
func SignEnrollRequest(ctx context.Context, key *signer.PrivateKey, agentID, token, hostname string) (EnrollRequest, error) {
	pem, err := signer.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		return EnrollRequest{}, err
	}
	sig, err := key.Sign(ctx, EnrollChallenge(agentID, token))
	if err != nil {
		return EnrollRequest{}, err
	}
	return EnrollRequest{Token: token, AgentID: agentID, PublicKey: string(pem), Hostname: hostname, Proof: sig}, nil
}
