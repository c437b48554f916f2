package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/provtrail/provtrail/central"
	"github.com/provtrail/provtrail/signer"
)

// runEnroll implements `provtrail enroll`: register this host's identity
// key with central using an enrollment token. The request is signed with
// the key, so central knows the host holds it.
func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("enroll", "enroll --url URL --id AGENT --key KEYFILE (--token-file FILE | --token TOKEN) [--ca FILE] [--passphrase-file FILE] [--hostname NAME]", stdout, stderr)
	var base, id, keyRef, tokenFile, token, caFile, passFile, hostname string
	fs.StringVar(&base, "url", "", "central's URL (https://central:7443)")
	fs.StringVar(&id, "id", "", "this agent's id (agent.hcl agent.id)")
	fs.StringVar(&keyRef, "key", "", "the agent's identity key file or KMS reference (agent.hcl signer.key_file)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the enrollment token (preferred over --token, which shows in ps)")
	fs.StringVar(&token, "token", "", "the enrollment token")
	fs.StringVar(&caFile, "ca", "", "CA certificate for central's TLS certificate")
	fs.StringVar(&passFile, "passphrase-file", "", "passphrase of an encrypted key (default: $"+signer.DefaultPassphraseEnv+", else a prompt)")
	fs.StringVar(&hostname, "hostname", "", "host name to record (default: this host's)")
	if code, done := parseFlags(fs, args, stdout); done {
		return code
	}
	if base == "" || id == "" || keyRef == "" || (token == "") == (tokenFile == "") || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "provtrail enroll: --url, --id, --key and one of --token-file and --token are required")
		fs.Usage()
		return exitUsage
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "provtrail enroll: %v\n", err)
			return exitUsage
		}
		token = strings.TrimSpace(string(b))
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	key, err := signer.LoadPrivateKey(ctx, keyRef, nil)
	if errors.Is(err, signer.ErrEncryptedKey) {
		pass, perr := signer.PassphraseSource{File: passFile, Terminal: os.Stdin, PromptOut: stderr}.Resolve()
		if perr != nil {
			fmt.Fprintf(stderr, "provtrail enroll: %v\n", perr)
			return exitFailure
		}
		key, err = signer.LoadPrivateKey(ctx, keyRef, pass)
		clear(pass)
	}
	if err != nil {
		fmt.Fprintf(stderr, "provtrail enroll: %v\n", err)
		return exitFailure
	}
	req, err := central.SignEnrollRequest(ctx, key, id, token, hostname)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail enroll: %v\n", err)
		return exitFailure
	}
	c, err := httpClient(caFile)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail enroll: %v\n", err)
		return exitUsage
	}
	resp, err := postEnroll(ctx, c, base, req)
	if err != nil {
		fmt.Fprintf(stderr, "provtrail enroll: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "enrolled agent %s (key id %s) with audience %q: %s\n", resp.AgentID, resp.KeyID, resp.Audience, resp.Status)
	if resp.Status == central.AgentPending {
		fmt.Fprintf(stdout, "an operator must approve it: provtrail central agents approve %s --config central.hcl\n", resp.AgentID)
	}
	return exitOK
}

func postEnroll(ctx context.Context, c *http.Client, base string, req central.EnrollRequest) (*central.EnrollResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Reason string }
		if json.Unmarshal(data, &e) == nil && e.Reason != "" {
			return nil, fmt.Errorf("central refused: %s (%s)", e.Reason, resp.Status)
		}
		return nil, fmt.Errorf("central refused: %s", resp.Status)
	}
	var out central.EnrollResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("enroll response: %w", err)
	}
	return &out, nil
}
