package central

import (
	"bytes"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/provtrail/provtrail/signer"
)

// FuzzParseEvents: any verified body (signed NDJSON from an agent) is
// stored whole, line by line, without a panic.
func FuzzParseEvents(f *testing.F) {
	seed, err := os.ReadFile("testdata/events.ndjson")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, line := range bytes.Split(seed, []byte("\n")) {
		f.Add(append(line, '\n'))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, _ := parseEvents(body, signer.Digest{}, nil)
		if want := len(bodyLines(body)); len(evs) != want {
			t.Fatalf("%d events from %d lines", len(evs), want)
		}
		for i, e := range evs {
			if e.Ord != i || e.EventID == "" || len(e.EventID) > 160 {
				t.Fatalf("event %d: ord %d id %q", i, e.Ord, e.EventID)
			}
		}
	})
}

// FuzzParseEventQuery: query parameters from the network never panic and
// invalid ones are errors, not queries.
func FuzzParseEventQuery(f *testing.F) {
	for _, s := range []string{"actor=root&since=2026-01-01T00:00:00Z", "limit=5&after=123.4", "until=bad", "limit=-1", "group=wheel&host=h&user=u&action=a&system=s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseEventQuery(v)
		if err != nil {
			return
		}
		if q.Limit < 0 {
			t.Fatalf("negative limit %d", q.Limit)
		}
		if q.After != "" {
			_, _, _ = parseCursor(q.After)
		}
	})
}

// FuzzDecodeBody: stored bodies in any encoding decode or fail cleanly.
func FuzzDecodeBody(f *testing.F) {
	f.Add("zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x01, 0x00, 0x00})
	f.Add("gzip", []byte{0x1f, 0x8b, 0x08, 0x00})
	f.Add("identity", []byte("{}\n"))
	f.Fuzz(func(t *testing.T, enc string, body []byte) {
		out, err := DecodeBody(signer.Encoding(enc), body)
		if err == nil && len(out) > maxDecodedBody {
			t.Fatalf("decoded %d bytes", len(out))
		}
	})
}

// FuzzEnrollRequest: enrollment requests from the network are refused
// cleanly unless signed (the store is not touched for bad ones).
func FuzzEnrollRequest(f *testing.F) {
	f.Add("ptenroll_x", "host-1", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n", []byte("sig"))
	f.Add("", "", "", []byte{})
	f.Fuzz(func(t *testing.T, token, id, pub string, proof []byte) {
		if !utf8.ValidString(id) {
			return
		}
		_, status, err := Enroll(t.Context(), nil, "aud", EnrollRequest{Token: token, AgentID: id, PublicKey: pub, Proof: proof}, nowForFuzz)
		if err == nil || status < 400 {
			t.Fatalf("unsigned request accepted: %d %v", status, err)
		}
		if strings.Contains(err.Error(), token) && len(token) > 12 {
			t.Fatalf("error echoes the token: %v", err)
		}
	})
}

var nowForFuzz = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
