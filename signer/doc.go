// Package signer makes and checks provtrail's signed batches (protocol v1): keys (files,
// cosign-style encrypted PEM, sigstore KMS references), the batch format (a DSSE-signed
// header over the body's digest), the agent's forward-secure hash chain, and the verifier
// that central and `provtrail verify` use. docs/protocol.md is the byte-level
// specification; testdata/vectors holds test vectors for it.
//
// # Keys
//
// GenerateKey, WriteKeyPair and MarshalPrivateKeyPEM make keys (`provtrail keygen`);
// LoadPrivateKey loads a PEM file (ENCRYPTED SIGSTORE PRIVATE KEY or plain PKCS#8) or a
// sigstore KMS reference; LoadPublicKey reads a PEM public key. KeyID is the hex SHA-256 of
// the DER SubjectPublicKeyInfo. PassphraseSource resolves a passphrase from a file, the
// PROVTRAIL_PASSPHRASE variable, or a terminal prompt.
//
// # Agent side
//
//	id, _ := signer.LoadPrivateKey(ctx, "/etc/provtrail/agent.key", pass)
//	chain, _ := signer.OpenChain(ctx, signer.ChainConfig{
//		Dir: stateDir + "/chain", Audience: "central-1", AgentID: "host-1",
//		Identity: id, Encoding: signer.EncodingZstd,
//		LastStored: spool.LastEnvelope, // newest stored batch's envelope, for crash recovery
//	})
//	b, err := chain.Seal(ctx, ndjson, signer.Meta{FirstTime: t0, LastTime: t1}, spool.Append)
//	hb, err := chain.Seal(ctx, nil, signer.Meta{}, spool.Append) // heartbeat
//	wire, _ := signer.MarshalBatch(b) // POST body, Content-Type signer.BatchMediaType
//
// Seal signs, hands the batch to the store func (which must make it durable), and only
// then advances the chain state and destroys the used key.
//
// # Central side
//
//	v, _ := signer.NewVerifier(signer.VerifierConfig{Audience: "central-1", History: store})
//	b, err := signer.UnmarshalBatch(requestBody, v.Limits()) // *VerdictError on bad framing
//	h, _, err := signer.Inspect(b, v.Limits())               // unverified: which stream?
//	st := store.StreamState(h.AgentID, h.StreamID)           // or NewStreamState(agent, identityPub)
//	res, err := v.Verify(ctx, st, b)                         // err: cannot decide, answer 503
//	switch res.Verdict {
//	case signer.Accepted: // store res.Body, res.Record and res.Next atomically; log the envelope
//	case signer.Duplicate: // ack again
//	default:               // res.Verdict.HTTPStatus(), res.Reason
//	}
//
// Verify never mutates st: callers serialise Verify per stream and persist Result.Next
// with the batch.
package signer
