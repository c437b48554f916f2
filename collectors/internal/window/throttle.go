package window

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pacer spaces requests to a provider at least Interval apart (the
// provider's documented ceiling is the default pace) and holds them while
// the provider has said to wait. It is safe for concurrent use.
type Pacer struct {
	clock    Clock
	interval time.Duration

	mu   sync.Mutex // guards next
	next time.Time
}

// NewPacer paces at most perMinute requests a minute (0: no pacing).
func NewPacer(clock Clock, perMinute float64) *Pacer {
	p := &Pacer{clock: clock}
	if perMinute > 0 {
		p.interval = time.Duration(float64(time.Minute) / perMinute)
	}
	return p
}

// Interval returns the minimum spacing of requests.
func (p *Pacer) Interval() time.Duration { return p.interval }

// Wait blocks until the next request may be sent and reserves its slot.
func (p *Pacer) Wait(ctx context.Context) error {
	p.mu.Lock()
	now := p.clock.Now()
	at := p.next
	if at.Before(now) {
		at = now
	}
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	return p.clock.Sleep(ctx, at.Sub(now))
}

// HoldUntil keeps every request from being sent before t.
func (p *Pacer) HoldUntil(t time.Time) {
	p.mu.Lock()
	if t.After(p.next) {
		p.next = t
	}
	p.mu.Unlock()
}

// StatusError is a response the provider refused and that retrying will
// not fix (a bad request, an expired page token, missing permission).
type StatusError struct {
	Status int
	// Body is a short prefix of the response body (error bodies carry no
	// secrets; request credentials are never part of it).
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body)
}

// ThrottledError is returned when the provider kept throttling past the
// retry budget of one request; the Engine backs off and retries the page.
type ThrottledError struct {
	Status int
	Wait   time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("throttled (HTTP %d), provider asked to wait %s", e.Status, e.Wait)
}

// ErrPageToken marks a page token the provider no longer accepts (expired,
// or issued for other query parameters): the Engine re-reads the window
// from its first page. Sources wrap it.
var ErrPageToken = errors.New("page token rejected")

// HTTP sends requests to a REST audit API with pacing and the provider's
// throttling honoured: 429 and 503 with Retry-After (seconds or date), Okta's
// X-Rate-Limit-Reset and GitHub's X-RateLimit-Reset (epoch seconds, taken
// relative to the server's Date header when present), GitHub's 403 with
// X-RateLimit-Remaining: 0, Google's 403 rateLimitExceeded, 5xx and transport errors with exponential
// backoff. A response that says no requests remain holds the Pacer until
// the reset, so the next request does not draw a 429 at all.
type HTTP struct {
	Client *http.Client
	Pacer  *Pacer
	Clock  Clock
	Logger *slog.Logger
	// MaxAttempts bounds the tries of one request (default 8).
	MaxAttempts int
	// MaxWait caps one wait (default 5 minutes).
	MaxWait time.Duration
	// MaxBody bounds a response body (default 64 MiB).
	MaxBody int64
}

// Response is a successful reply.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends the request newReq builds (anew for every attempt) and returns
// the first 2xx response. Non-2xx replies that retrying cannot fix are
// returned as *StatusError.
func (h *HTTP) Do(ctx context.Context, newReq func(context.Context) (*http.Request, error)) (*Response, error) {
	attempts := h.MaxAttempts
	if attempts <= 0 {
		attempts = 8
	}
	maxBody := h.MaxBody
	if maxBody <= 0 {
		maxBody = 64 << 20
	}
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		if h.Pacer != nil {
			if err := h.Pacer.Wait(ctx); err != nil {
				return nil, err
			}
		}
		req, err := newReq(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := h.client().Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = fmt.Errorf("%s %s: %w", req.Method, redactURL(req), err)
			if err := h.backoff(ctx, attempt, 0, lastErr); err != nil {
				return nil, err
			}
			continue
		}
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		resp.Body.Close()
		now := h.Clock.Now()
		if rerr == nil && int64(len(body)) > maxBody {
			rerr = fmt.Errorf("response body larger than %d bytes", maxBody)
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			if rerr != nil {
				lastErr = fmt.Errorf("%s %s: read body: %w", req.Method, redactURL(req), rerr)
				if err := h.backoff(ctx, attempt, 0, lastErr); err != nil {
					return nil, err
				}
				continue
			}
			if remainingZero(resp.Header) && h.Pacer != nil {
				if d, ok := resetWait(resp.Header, now); ok {
					h.Pacer.HoldUntil(now.Add(h.capWait(d)))
				}
			}
			return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
		case retryable(resp, body):
			wait, _ := RetryAfter(resp.Header, now)
			lastErr = &ThrottledError{Status: resp.StatusCode, Wait: wait}
			if err := h.backoff(ctx, attempt, wait, lastErr); err != nil {
				return nil, err
			}
		default:
			return nil, &StatusError{Status: resp.StatusCode, Body: strings.TrimSpace(sample(body))}
		}
	}
	return nil, lastErr
}

func (h *HTTP) client() *http.Client {
	if h.Client != nil {
		return h.Client
	}
	return http.DefaultClient
}

func (h *HTTP) capWait(d time.Duration) time.Duration {
	max := h.MaxWait
	if max <= 0 {
		max = 5 * time.Minute
	}
	return min(d, max)
}

// backoff waits the provider's wait if it gave one, else 1s·2^attempt,
// capped by MaxWait, and holds the Pacer for as long.
func (h *HTTP) backoff(ctx context.Context, attempt int, wait time.Duration, cause error) error {
	if wait <= 0 {
		wait = time.Second << min(attempt, 16)
	}
	wait = h.capWait(wait)
	if h.Logger != nil {
		h.Logger.LogAttrs(ctx, slog.LevelWarn, "provider request failed, retrying",
			slog.Int("attempt", attempt+1), slog.Duration("wait", wait), slog.String("error", cause.Error()))
	}
	if h.Pacer != nil {
		h.Pacer.HoldUntil(h.Clock.Now().Add(wait))
		return nil // the Pacer's Wait does the sleeping
	}
	return h.Clock.Sleep(ctx, wait)
}

func retryable(resp *http.Response, body []byte) bool {
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case http.StatusForbidden:
		// GitHub's primary (remaining 0) and secondary (Retry-After)
		// rate limits; Google APIs' 403 rateLimitExceeded and
		// userRateLimitExceeded.
		return remainingZero(resp.Header) || resp.Header.Get("Retry-After") != "" ||
			bytes.Contains(body, []byte(`RateLimitExceeded"`)) || bytes.Contains(body, []byte(`"rateLimitExceeded"`))
	}
	return false
}

func remainingZero(h http.Header) bool {
	for _, k := range []string{"X-Rate-Limit-Remaining", "X-RateLimit-Remaining"} {
		if v := h.Get(k); v != "" {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n <= 0 {
				return true
			}
		}
	}
	return false
}

// RetryAfter returns how long a throttled reply asks the client to wait:
// Retry-After (delta seconds or HTTP date), else the rate-limit reset epoch
// of Okta (X-Rate-Limit-Reset) or GitHub (X-RateLimit-Reset).
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 && n < 1e7 {
			return time.Duration(n * float64(time.Second)), true
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(serverNow(h, now)), 0), true
		}
	}
	return resetWait(h, now)
}

func resetWait(h http.Header, now time.Time) (time.Duration, bool) {
	for _, k := range []string{"X-Rate-Limit-Reset", "X-RateLimit-Reset"} {
		v := strings.TrimSpace(h.Get(k))
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			continue
		}
		// The reset is an absolute time on the server's clock: measure
		// it against the server's Date so our clock skew does not matter.
		d := time.Unix(n, 0).Sub(serverNow(h, now))
		// One extra second: resets are whole seconds.
		return max(d, 0) + time.Second, true
	}
	return 0, false
}

func serverNow(h http.Header, now time.Time) time.Time {
	if v := h.Get("Date"); v != "" {
		if t, err := http.ParseTime(v); err == nil {
			return t
		}
	}
	return now
}

// redactURL names a request without its query, which may carry filters
// the operator did not ask to see in logs.
func redactURL(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.User = "", nil
	return u.String()
}
