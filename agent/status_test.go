package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/central/status"
	"github.com/provtrail/provtrail/pipeline/spool"
	"github.com/provtrail/provtrail/signer"
)

// TestStatusReports: the agent's signed status reports verify with
// central's reader, carry a source gap until central accepted it once, and
// report a spool-full episode once.
func TestStatusReports(t *testing.T) {
	k, err := signer.GenerateKey(signer.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	id, err := signer.NewPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []status.Report
	fail := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/agents/host-1/status" || r.Header.Get("Content-Type") != status.MediaType {
			http.Error(w, "bad request "+r.URL.Path, 400)
			return
		}
		body, _ := io.ReadAll(r.Body)
		rep, err := status.Verify(body, k.Public(), "aud-1", time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, rep)
		if fail { // the first report is lost on the way back
			fail = false
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"accepted":true}`)
	}))
	defer srv.Close()

	sp, err := spool.Open(spool.Config{Dir: t.TempDir(), MaxBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rep := newStatusReporter(srv.URL, "aud-1", "host-1", id, srv.Client(), sp, slog.New(slog.DiscardHandler))
	ctx := context.Background()

	rep.report(ctx) // nothing to say: no request
	rep.gap("ldap_changelog/main", "gap: changes 10 to 20 were trimmed")
	rep.report(ctx) // refused with 503: kept
	rep.report(ctx) // accepted
	rep.report(ctx) // nothing left
	for {
		if _, err := sp.Append(make([]byte, 1000)); errors.Is(err, spool.ErrFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	rep.report(ctx) // spool full
	rep.report(ctx) // same episode: nothing new

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("%d reports reached central, want 3: %+v", len(got), got)
	}
	for i := 0; i < 2; i++ {
		if len(got[i].Problems) != 1 || got[i].Problems[0].Kind != status.KindSourceGap || got[i].Problems[0].Source != "ldap_changelog/main" {
			t.Fatalf("report %d: %+v", i, got[i])
		}
	}
	if p := got[2].Problems; len(p) != 1 || p[0].Kind != status.KindSpoolFull || p[0].Since.IsZero() {
		t.Fatalf("spool report: %+v", got[2])
	}
	if !got[1].Created.After(got[0].Created) || !got[2].Created.After(got[1].Created) {
		t.Fatal("report times do not increase")
	}
}
