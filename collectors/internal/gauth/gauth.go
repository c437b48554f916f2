// Package gauth gets OAuth tokens for the Google collectors (gcpaudit,
// workspace) the standard way: a service-account JSON key file, with an
// optional subject for Workspace domain-wide delegation and an optional
// token URL override (tests), or Application Default Credentials.
package gauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// TokenSource returns tokens for scopes from the service-account JSON in
// file (its token_uri replaced by tokenURL when set, acting as subject when
// set), or from Application Default Credentials when file is "". Token
// requests go through base.
func TokenSource(file, tokenURL, subject string, base *http.Client, scopes ...string) (oauth2.TokenSource, error) {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, base)
	if file == "" {
		if subject != "" {
			return nil, errors.New("impersonating a Workspace admin needs a service-account credentials_file")
		}
		creds, err := google.FindDefaultCredentials(ctx, scopes...)
		if err != nil {
			return nil, fmt.Errorf("application default credentials: %w", err)
		}
		return creds.TokenSource, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read credentials_file: %w", err)
	}
	var kind struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &kind); err != nil {
		return nil, fmt.Errorf("credentials_file %s is not JSON", file)
	}
	if kind.Type == "service_account" {
		jc, err := google.JWTConfigFromJSON(b, scopes...)
		if err != nil {
			return nil, fmt.Errorf("credentials_file %s: %w", file, err)
		}
		if tokenURL != "" {
			jc.TokenURL = tokenURL
		}
		jc.Subject = subject
		return oauth2.ReuseTokenSource(nil, jc.TokenSource(ctx)), nil
	}
	if subject != "" {
		return nil, fmt.Errorf("credentials_file %s is a %q credential; impersonation needs a service account", file, kind.Type)
	}
	creds, err := google.CredentialsFromJSONWithType(ctx, b, google.CredentialsType(kind.Type), scopes...)
	if err != nil {
		return nil, fmt.Errorf("credentials_file %s: %w", file, err)
	}
	return creds.TokenSource, nil
}
