package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestVerdictText(t *testing.T) {
	want := map[Verdict]int{Accepted: 200, Duplicate: 200, Gap: 202, Fork: 409, BadSignature: 403, UnknownKey: 403,
		WrongAudience: http.StatusMisdirectedRequest, BodyMismatch: 422, Malformed: 400, TooLarge: 413}
	for v := Accepted; v <= TooLarge; v++ {
		b, err := v.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Verdict
		if err := back.UnmarshalText(b); err != nil || back != v {
			t.Fatalf("%v round trip: %v %v", v, back, err)
		}
		if v.HTTPStatus() != want[v] {
			t.Errorf("%v: HTTP %d, want %d", v, v.HTTPStatus(), want[v])
		}
	}
	if _, err := Verdict(0).MarshalText(); err == nil {
		t.Fatal("zero verdict marshalled")
	}
	var v Verdict
	if err := v.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("unknown verdict parsed")
	}
}

// TestStreamStatePersists: central stores StreamState as JSON between batches.
func TestStreamStatePersists(t *testing.T) {
	ctx := context.Background()
	a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "persist")
	v, err := NewVerifier(VerifierConfig{Audience: vecAudience})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ParsePublicKeyPEM([]byte(testPubPEM(t, "identity")))
	st, err := NewStreamState(vecAgent, pub)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		res, err := v.Verify(ctx, st, a.seal(i, 0))
		if err != nil || res.Verdict != Accepted {
			t.Fatalf("seq %d: %v %s %v", i, res.Verdict, res.Reason, err)
		}
		if res.Record.Seq != uint64(i) || res.Record.Digest != res.HeaderDigest || !res.SignatureVerified {
			t.Fatalf("record %+v", res.Record)
		}
		data, err := json.Marshal(res.Next)
		if err != nil {
			t.Fatal(err)
		}
		st = StreamState{}
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
	}
	if st.NextSeq != 5 {
		t.Fatalf("NextSeq %d", st.NextSeq)
	}
}

func TestVerifyOldSeqNeedsHistory(t *testing.T) {
	ctx := context.Background()
	pub, _ := ParsePublicKeyPEM([]byte(testPubPEM(t, "identity")))
	st, _ := NewStreamState(vecAgent, pub)
	boom := errors.New("db down")
	for _, tc := range []struct {
		name string
		h    History
		want error
	}{
		{"no history", nil, nil},
		{"history error", HistoryFunc(func(context.Context, string, string, uint64) (HeaderRecord, bool, error) {
			return HeaderRecord{}, false, boom
		}), boom},
		{"not found", HistoryFunc(func(context.Context, string, string, uint64) (HeaderRecord, bool, error) {
			return HeaderRecord{}, false, nil
		}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := NewVerifier(VerifierConfig{Audience: vecAudience, History: tc.h})
			a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "hist")
			b0, b1 := a.seal(1, 0), a.seal(1, 1)
			s := st
			for _, b := range []Batch{b0, b1} {
				res, err := v.Verify(ctx, s, b)
				if err != nil {
					t.Fatal(err)
				}
				s = res.Next
			}
			// The last batch again needs no history (its digest is in the state).
			if res, err := v.Verify(ctx, s, b1); err != nil || res.Verdict != Duplicate {
				t.Fatalf("last again: %v %v", res.Verdict, err)
			}
			_, err := v.Verify(ctx, s, b0)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("old seq without usable history: err %v", err)
			}
		})
	}
}

// TestVerifyBombIsCheap: a signed 64 MiB zstd bomb declaring raw_len 1000 is rejected
// after decoding at most 1001 bytes.
func TestVerifyBombIsCheap(t *testing.T) {
	ctx := context.Background()
	a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "bomb")
	pub, _ := ParsePublicKeyPEM([]byte(testPubPEM(t, "identity")))
	st, _ := NewStreamState(vecAgent, pub)
	v, _ := NewVerifier(VerifierConfig{Audience: vecAudience})
	res, _ := v.Verify(ctx, st, a.seal(1, 0))
	st = res.Next
	key1, _ := a.stolen()
	h := decodeBatchHeader(t, a.seal(1, 1))
	for name, bomb := range map[string][]byte{"zstd": zstdStreamBomb(t, 64<<20), "gzip": gzipBomb(t, 64<<20)} {
		hh := h
		hh.BodyEncoding = Encoding(name)
		hh.BodyLen, hh.BodySHA256, hh.RawLen = int64(len(bomb)), sha256Sum(bomb), 1000
		b := forge(t, hh, bomb, edSign(key1))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		res, err := v.Verify(ctx, st, b)
		elapsed := time.Since(start)
		runtime.ReadMemStats(&after)
		if err != nil || res.Verdict != TooLarge {
			t.Fatalf("%s bomb: %v (%s) %v", name, res.Verdict, res.Reason, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Errorf("%s bomb: allocated %d bytes", name, alloc)
		}
		if elapsed > time.Second {
			t.Errorf("%s bomb took %v", name, elapsed)
		}
		t.Logf("%s bomb (%d bytes compressed, 64 MiB decoded) rejected in %v", name, len(bomb), elapsed)
	}
}

func TestUnmarshalBatchLimits(t *testing.T) {
	a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "limits")
	b := a.seal(3, 0)
	data := frame(t, b)
	got, err := UnmarshalBatch(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Envelope, b.Envelope) || !bytes.Equal(got.Body, b.Body) || got.Encoding != b.Encoding {
		t.Fatal("round trip differs")
	}
	if int64(len(data)) != b.FramedSize() {
		t.Fatalf("FramedSize %d, len %d", b.FramedSize(), len(data))
	}
	for _, tc := range []struct {
		lim  Limits
		want Verdict
	}{
		{Limits{MaxEnvelope: 100}, TooLarge},
		{Limits{MaxBody: 10}, TooLarge},
	} {
		_, err := UnmarshalBatch(data, tc.lim)
		var ve *VerdictError
		if !errors.As(err, &ve) || ve.Verdict != tc.want {
			t.Fatalf("%+v: %v", tc.lim, err)
		}
	}
	// A header claiming a huge body is refused from the length field alone.
	huge := append([]byte{}, data[:len(data)-len(b.Body)-8]...)
	huge = append(huge, 0xff, 0, 0, 0, 0, 0, 0, 0)
	var ve *VerdictError
	if _, err := UnmarshalBatch(huge, Limits{}); !errors.As(err, &ve) || ve.Verdict != TooLarge {
		t.Fatalf("huge length: %v", err)
	}
	if _, err := MarshalBatch(Batch{Envelope: b.Envelope, Encoding: "br"}); err == nil {
		t.Fatal("marshalled an unknown encoding")
	}
}

func TestParseHeaderRejects(t *testing.T) {
	a := newSim(t, filepath.Join(t.TempDir(), "s"), chainCfg(t), "hdr")
	a.seal(1, 0)
	payload := mustPayload(t, a.seal(2, 1))
	if _, err := ParseHeader(payload); err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(m map[string]any){
		"version":          func(m map[string]any) { m["v"] = 2 },
		"stream id":        func(m map[string]any) { m["stream_id"] = "ABC" },
		"prev zero":        func(m map[string]any) { m["prev"] = ZeroDigest.String() },
		"prev upper":       func(m map[string]any) { m["prev"] = "AA" + m["prev"].(string)[2:] },
		"negative len":     func(m map[string]any) { m["body_len"] = -1 },
		"encoding":         func(m map[string]any) { m["body_encoding"] = "br" },
		"identity len":     func(m map[string]any) { m["raw_len"] = 1 },
		"no times":         func(m map[string]any) { delete(m, "first_time") },
		"times reversed":   func(m map[string]any) { m["first_time"] = "2027-01-01T00:00:00Z" },
		"short next_pub":   func(m map[string]any) { m["next_pub"] = "AAAA" },
		"key id":           func(m map[string]any) { m["key_id"] = "x" },
		"prev_stream late": func(m map[string]any) { m["prev_stream"] = m["stream_id"] },
		"empty aud":        func(m map[string]any) { m["aud"] = "" },
		"seq string":       func(m map[string]any) { m["seq"] = "1" },
		"seq fraction":     func(m map[string]any) { m["seq"] = 1.5 },
		"seq 2^53":         func(m map[string]any) { m["seq"] = uint64(1) << 53 },
		"created offset":   func(m map[string]any) { m["created"] = "2026-11-25T13:00:02+01:00" },
		"created garbage":  func(m map[string]any) { m["created"] = "yesterdayZ" },
	}
	for name, edit := range edits {
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		p, _ := json.Marshal(m)
		if _, err := ParseHeader(p); err == nil {
			t.Errorf("%s: accepted %s", name, p)
		}
	}
	for _, p := range []string{``, `[]`, `{"v":1}`, `{"v":1,"v":1}`, string(payload) + ` {}`, `{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{}}}}}}}}}}`} {
		if _, err := ParseHeader([]byte(p)); err == nil {
			t.Errorf("accepted %q", p)
		}
	}
}

// TestVerifierConcurrentStreams verifies several zstd streams in parallel with one
// Verifier (run with -race).
func TestVerifierConcurrentStreams(t *testing.T) {
	ctx := context.Background()
	v, _ := NewVerifier(VerifierConfig{Audience: vecAudience})
	pub, _ := ParsePublicKeyPEM([]byte(testPubPEM(t, "identity")))
	type stream struct {
		batches []Batch
	}
	streams := make([]stream, 4)
	for i := range streams {
		cfg := chainCfg(t)
		cfg.Encoding = EncodingZstd
		a := newSim(t, filepath.Join(t.TempDir(), "s"), cfg, "conc-verify-"+string(rune('a'+i)))
		for j := range 6 {
			streams[i].batches = append(streams[i].batches, a.seal(j*7%5, j))
		}
	}
	errs := make(chan error, len(streams))
	for _, s := range streams {
		go func() {
			st, _ := NewStreamState(vecAgent, pub)
			for _, b := range s.batches {
				res, err := v.Verify(ctx, st, b)
				if err != nil || res.Verdict != Accepted {
					errs <- errors.Join(err, errors.New(res.Verdict.String()+": "+res.Reason))
					return
				}
				st = res.Next
			}
			errs <- nil
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenBody: the sender gets back exactly the body it sealed, in every
// encoding, and a body that no longer matches its header is refused.
func TestOpenBody(t *testing.T) {
	for _, enc := range []Encoding{EncodingIdentity, EncodingGzip, EncodingZstd} {
		t.Run(string(enc), func(t *testing.T) {
			s := newSim(t, t.TempDir(), ChainConfig{Audience: "aud", AgentID: "host-1", Identity: loadTestKey(t, "identity"), Encoding: enc}, "open-"+string(enc))
			s.seal(3, 0)
			b := s.seal(5, 3)
			h, raw, err := OpenBody(b, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if want := events(5, 3); !bytes.Equal(raw, want) {
				t.Fatalf("body differs:\n%s\nwant\n%s", raw, want)
			}
			if h.Seq != 1 || h.Events != 5 || h.BodyEncoding != enc {
				t.Fatalf("header %+v", h)
			}
			bad := b
			bad.Body = bytes.Clone(b.Body)
			bad.Body[len(bad.Body)/2] ^= 1
			var ve *VerdictError
			if _, _, err := OpenBody(bad, Limits{}); !errors.As(err, &ve) || ve.Verdict != BodyMismatch {
				t.Fatalf("changed body: %v, want body_mismatch", err)
			}
		})
	}
}
