package okta

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// OAuthConfig is the optional oauth block: an Okta API service app that
// authenticates with a private key (private_key_jwt), instead of an SSWS
// API token.
//
//	oauth {
//	  client_id        = "0oa1a2b3c4d5e6f7g8h9"
//	  private_key_file = "/etc/provtrail/okta-service-app.pem"   # PKCS#1 or PKCS#8 RSA
//	  key_id           = "kid-of-the-public-key"                 # optional
//	  # scopes = ["okta.logs.read"]; token_url defaults to the org's /oauth2/v1/token
//	}
type OAuthConfig struct {
	ClientID       string   `hcl:"client_id"`
	PrivateKeyFile string   `hcl:"private_key_file"`
	KeyID          string   `hcl:"key_id,optional"`
	Scopes         []string `hcl:"scopes,optional"`
	TokenURL       string   `hcl:"token_url,optional"`
}

// assertionSource gets org-authorization-server access tokens with the
// client credentials grant and a freshly signed client assertion (RFC
// 7523) for every request.
type assertionSource struct {
	clientID, tokenURL, keyID string
	scopes                    []string
	key                       *rsa.PrivateKey
	hc                        *http.Client
	now                       func() time.Time
}

func newAssertionSource(c *OAuthConfig, tokenURL string, hc *http.Client, now func() time.Time) (oauth2.TokenSource, error) {
	b, err := os.ReadFile(c.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read oauth private_key_file: %w", err)
	}
	key, err := parseRSAKey(b)
	if err != nil {
		return nil, fmt.Errorf("oauth private_key_file %s: %w", c.PrivateKeyFile, err)
	}
	scopes := c.Scopes
	if len(scopes) == 0 {
		scopes = []string{"okta.logs.read"}
	}
	s := &assertionSource{clientID: c.ClientID, tokenURL: tokenURL, keyID: c.KeyID, scopes: scopes, key: key, hc: hc, now: now}
	return oauth2.ReuseTokenSource(nil, s), nil
}

func parseRSAKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#1 or PKCS#8 private key: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T; Okta service apps here use RSA", k)
	}
	return rk, nil
}

func (s *assertionSource) assertion() (string, error) {
	now := s.now()
	jti := make([]byte, 16)
	rand.Read(jti)
	header := map[string]string{"alg": "RS256", "typ": "JWT"}
	if s.keyID != "" {
		header["kid"] = s.keyID
	}
	claims := map[string]any{"iss": s.clientID, "sub": s.clientID, "aud": s.tokenURL,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": hex.EncodeToString(jti)}
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Token implements oauth2.TokenSource.
func (s *assertionSource) Token() (*oauth2.Token, error) {
	a, err := s.assertion()
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {strings.Join(s.scopes, " ")},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {a},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("okta token request: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		json.Unmarshal(body, &e)
		return nil, fmt.Errorf("okta token request: HTTP %d: %s %s", resp.StatusCode, e.Error, e.Description)
	}
	var t struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return nil, errors.New("okta token request: reply has no access_token")
	}
	if !strings.EqualFold(t.TokenType, "Bearer") {
		return nil, fmt.Errorf("okta token request: token type %q is not supported (turn off \"Require DPoP\" for the service app)", t.TokenType)
	}
	// oauth2 checks expiry against the wall clock.
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: "Bearer", Expiry: time.Now().Add(time.Duration(t.ExpiresIn) * time.Second)}, nil
}
