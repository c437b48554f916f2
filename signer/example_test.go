package signer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/provtrail/provtrail/signer"
)

// The agent seals batches into its chain; central verifies them against the stream state
// it stores per (agent, stream).
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "provtrail-example")
	defer os.RemoveAll(dir)

	// Agent: identity key (normally signer.LoadPrivateKey of a `provtrail keygen` file).
	priv, _ := signer.GenerateKey(signer.KeyEd25519)
	identity, _ := signer.NewPrivateKey(priv)
	chain, err := signer.OpenChain(ctx, signer.ChainConfig{
		Dir: filepath.Join(dir, "chain"), Audience: "central-1", AgentID: "host-1",
		Identity: identity, Encoding: signer.EncodingZstd,
	})
	if err != nil {
		panic(err)
	}
	defer chain.Close()
	var spool [][]byte
	store := func(_ context.Context, b signer.Batch) error {
		wire, err := signer.MarshalBatch(b) // the HTTP request body
		spool = append(spool, wire)
		return err
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"action":"user.create"}` + "\n" + `{"action":"group.member.add"}` + "\n")
	if _, err := chain.Seal(ctx, body, signer.Meta{FirstTime: t0, LastTime: t0.Add(time.Second)}, store); err != nil {
		panic(err)
	}
	if _, err := chain.Seal(ctx, nil, signer.Meta{}, store); err != nil { // heartbeat
		panic(err)
	}

	// Central.
	v, _ := signer.NewVerifier(signer.VerifierConfig{Audience: "central-1"})
	state, _ := signer.NewStreamState("host-1", identity.Public())
	for _, wire := range append(spool, spool[1]) { // the heartbeat arrives twice
		b, err := signer.UnmarshalBatch(wire, v.Limits())
		if err != nil {
			panic(err)
		}
		res, err := v.Verify(ctx, state, b)
		if err != nil {
			panic(err)
		}
		fmt.Println(res.Header.Seq, res.Verdict, res.Header.Events, res.Verdict.HTTPStatus())
		if res.Verdict == signer.Accepted {
			state = res.Next // persisted with the batch in one transaction
		}
	}
	// Output:
	// 0 accepted 2 200
	// 1 accepted 0 200
	// 1 duplicate 0 200
}
