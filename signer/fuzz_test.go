package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// vectorBatches returns the framed batches of every vector file (fuzz seeds).
func vectorBatches(f *testing.F) [][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "vectors", "*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no vectors: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		var v vectorFile
		if err := json.Unmarshal(data, &v); err != nil {
			f.Fatal(err)
		}
		for _, s := range v.Steps {
			if len(s.Batch) < 8<<10 {
				out = append(out, s.Batch)
			}
		}
	}
	return out
}

// FuzzBatch feeds arbitrary bytes through everything central runs on a request body:
// framing, envelope, header, and verification against a stream that accepted seq 0 of
// the chain vector. Nothing may panic, a successful decode must re-encode to the same
// bytes, and only the genuine seq 1 may be Accepted.
func FuzzBatch(f *testing.F) {
	for _, b := range vectorBatches(f) {
		f.Add(b)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "vectors", "chain.json"))
	if err != nil {
		f.Fatal(err)
	}
	var chain vectorFile
	if err := json.Unmarshal(data, &chain); err != nil {
		f.Fatal(err)
	}
	lim := Limits{MaxEnvelope: 8 << 10, MaxBody: 1 << 20, MaxDecompressed: 4 << 20, MaxEvents: 1000}
	c := newCentral(f, chain.Audience, chain.AgentID, chain.IdentityKey, lim)
	if res, err := c.receive(context.Background(), chain.Steps[0].Batch); err != nil || res.Verdict != Accepted {
		f.Fatalf("seq 0: %v %v", res.Verdict, err)
	}
	var st StreamState
	for _, s := range c.states {
		st = s
	}
	seq1 := chain.Steps[1].Batch
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := UnmarshalBatch(in, lim)
		if err != nil {
			if _, ok := err.(*VerdictError); !ok {
				t.Fatalf("error is %T, want *VerdictError", err)
			}
			return
		}
		re, err := MarshalBatch(b)
		if err != nil || !bytes.Equal(re, in) {
			t.Fatalf("re-encode differs (%v)", err)
		}
		if _, _, err := Inspect(b, lim); err != nil {
			if _, ok := err.(*VerdictError); !ok {
				t.Fatalf("inspect error is %T", err)
			}
		}
		res, err := c.v.Verify(context.Background(), st, b)
		if err != nil {
			return // old seq without history: undecidable, fine
		}
		if res.Verdict == 0 {
			t.Fatal("no verdict")
		}
		if res.Verdict == Accepted && !bytes.Equal(in, seq1) {
			// Another encoding of the same signed header and body (e.g. base64 variant,
			// JSON whitespace in the envelope) is acceptable; a different header is not.
			want, _ := UnmarshalBatch(seq1, lim)
			wp, _, _, _ := parseEnvelope(want.Envelope)
			gp, _, _, _ := parseEnvelope(b.Envelope)
			if !bytes.Equal(wp, gp) || !bytes.Equal(want.Body, b.Body) {
				t.Fatalf("accepted a batch that is not seq 1: %q", in)
			}
		}
	})
}

// FuzzParseHeader checks that a header that parses re-encodes and parses to the same value.
func FuzzParseHeader(f *testing.F) {
	for _, b := range vectorBatches(f) {
		if bb, err := UnmarshalBatch(b, Limits{}); err == nil {
			if p, _, _, err := parseEnvelope(bb.Envelope); err == nil {
				f.Add(p)
			}
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, err := ParseHeader(payload)
		if err != nil {
			return
		}
		again, err := json.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		h2, err := ParseHeader(again)
		if err != nil {
			t.Fatalf("re-encoded header does not parse: %v\n%s", err, again)
		}
		if h2.Seq != h.Seq || h2.Prev != h.Prev || h2.BodySHA256 != h.BodySHA256 || !bytes.Equal(h2.NextPub, h.NextPub) || !h2.Created.Equal(h.Created) {
			t.Fatalf("round trip changed the header")
		}
	})
}
