package window_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/collectors/internal/window"
	"github.com/provtrail/provtrail/collectors/internal/windowtest"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"seconds", map[string]string{"Retry-After": "10"}, 10 * time.Second, true},
		{"http date", map[string]string{"Retry-After": "Mon, 01 Jan 2024 00:00:30 GMT", "Date": "Mon, 01 Jan 2024 00:00:00 GMT"}, 30 * time.Second, true},
		// Okta: reset is absolute; measured against the server's Date, not
		// our (skewed) clock.
		{"okta reset vs Date", map[string]string{"X-Rate-Limit-Reset": "1704067260", "Date": "Mon, 01 Jan 2024 00:00:00 GMT"}, 61 * time.Second, true},
		{"github reset no Date", map[string]string{"X-RateLimit-Reset": strconv.FormatInt(now.Add(5*time.Second).Unix(), 10)}, 6 * time.Second, true},
		{"reset in the past", map[string]string{"X-Rate-Limit-Reset": "1", "Date": "Mon, 01 Jan 2024 00:00:00 GMT"}, time.Second, true},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
		{"none", nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, ok := window.RetryAfter(h, now)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("RetryAfter = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestHTTPThrottleStorm: the server throttles in every documented way in
// turn; the client waits exactly what it was told, never gives up within
// its budget, and gets the page.
func TestHTTPThrottleStorm(t *testing.T) {
	var n atomic.Int32
	replies := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) { w.Header().Set("Retry-After", "7"); w.WriteHeader(429) },
		func(w http.ResponseWriter) {
			w.Header().Set("Date", "Mon, 01 Jan 2024 00:00:00 GMT")
			w.Header().Set("X-Rate-Limit-Remaining", "0")
			w.Header().Set("X-Rate-Limit-Reset", "1704067220")
			w.WriteHeader(429)
			w.Write([]byte(`{"errorCode":"E0000047"}`))
		},
		func(w http.ResponseWriter) {
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("Date", "Mon, 01 Jan 2024 00:00:00 GMT")
			w.Header().Set("X-RateLimit-Reset", "1704067203")
			w.WriteHeader(403)
		},
		func(w http.ResponseWriter) { w.WriteHeader(503) },
		func(w http.ResponseWriter) { w.Write([]byte(`ok`)) },
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replies[min(int(n.Add(1))-1, len(replies)-1)](w)
	}))
	defer srv.Close()
	clock := windowtest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	h := &window.HTTP{Client: srv.Client(), Clock: clock, Pacer: window.NewPacer(clock, 0)}
	resp, err := h.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != "ok" {
		t.Fatalf("body %q", resp.Body)
	}
	var total time.Duration
	for _, d := range clock.Sleeps() {
		total += d
	}
	// 7s + (20s+1s) + (3s+1s) + 8s (fourth attempt's exponential backoff).
	if want := 7*time.Second + 21*time.Second + 4*time.Second + 8*time.Second; total != want {
		t.Fatalf("waited %s (%v), want %s", total, clock.Sleeps(), want)
	}
}

func TestHTTPGivesUpAndNonRetryable(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if r.URL.Path == "/bad" {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid page token"}`))
			return
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(429)
	}))
	defer srv.Close()
	clock := windowtest.NewClock(time.Unix(0, 0))
	h := &window.HTTP{Client: srv.Client(), Clock: clock, MaxAttempts: 3}
	get := func(path string) error {
		_, err := h.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		})
		return err
	}
	var te *window.ThrottledError
	if err := get("/x"); !errors.As(err, &te) || te.Status != 429 {
		t.Fatalf("want ThrottledError, got %v", err)
	}
	if n.Load() != 3 {
		t.Fatalf("%d attempts, want 3", n.Load())
	}
	var se *window.StatusError
	if err := get("/bad"); !errors.As(err, &se) || se.Status != 400 {
		t.Fatalf("want StatusError 400, got %v", err)
	}
	if n.Load() != 4 {
		t.Fatalf("400 was retried")
	}
}

// TestHTTPRemainingZeroHoldsPacer: a 200 that says no requests remain
// delays the next request until the reset instead of drawing a 429.
func TestHTTPRemainingZeroHoldsPacer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", "Mon, 01 Jan 2024 00:00:00 GMT")
		w.Header().Set("X-Rate-Limit-Remaining", "0")
		w.Header().Set("X-Rate-Limit-Reset", "1704067230")
		w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	clock := windowtest.NewClock(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	h := &window.HTTP{Client: srv.Client(), Clock: clock, Pacer: window.NewPacer(clock, 600)}
	for range 2 {
		if _, err := h.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		}); err != nil {
			t.Fatal(err)
		}
	}
	sl := clock.Sleeps()
	if len(sl) != 2 || sl[0] != 0 || sl[1] != 31*time.Second {
		t.Fatalf("sleeps %v, want [0 31s]", sl)
	}
}

func TestPacerSpacing(t *testing.T) {
	clock := windowtest.NewClock(time.Unix(0, 0))
	p := window.NewPacer(clock, 120) // 2 rps, CloudTrail's ceiling
	for range 5 {
		if err := p.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := clock.Now().Sub(time.Unix(0, 0)); got != 2*time.Second {
		t.Fatalf("5 requests took %s, want 2s", got)
	}
}

// TestHTTPGoogle403RateLimit: Google APIs throttle with 403 and reason
// rateLimitExceeded; that is retried, other 403s are not.
func TestHTTPGoogle403RateLimit(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/denied" {
			w.WriteHeader(403)
			w.Write([]byte(`{"error":{"code":403,"errors":[{"reason":"forbidden"}]}}`))
			return
		}
		if n.Add(1) < 3 {
			w.WriteHeader(403)
			w.Write([]byte(`{"error":{"code":403,"errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded"}]}}`))
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	h := &window.HTTP{Client: srv.Client(), Clock: windowtest.NewClock(time.Unix(0, 0))}
	get := func(path string) error {
		_, err := h.Do(context.Background(), func(ctx context.Context) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		})
		return err
	}
	if err := get("/"); err != nil || n.Load() != 3 {
		t.Fatalf("err %v after %d tries", err, n.Load())
	}
	var se *window.StatusError
	if err := get("/denied"); !errors.As(err, &se) || se.Status != 403 {
		t.Fatalf("plain 403: %v", err)
	}
}
