package window

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
)

// Send sends method target through Do, with body (nil: none) and
// User-Agent provtrail; header, when set, adds the source's headers
// (Accept, credentials) to every attempt's request.
func (h *HTTP) Send(ctx context.Context, method, target string, body []byte, header func(*http.Request) error) (*Response, error) {
	return h.Do(ctx, func(ctx context.Context) (*http.Request, error) {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, target, r)
		if err != nil {
			return nil, err
		}
		if header != nil {
			if err := header(req); err != nil {
				return nil, err
			}
		}
		req.Header.Set("User-Agent", "provtrail")
		return req, nil
	})
}

// PageRefused reports whether err is the provider refusing page, a page
// token or next link (not the first page): a *StatusError with one of
// statuses (400 Bad Request when none are given). Sources wrap
// ErrPageToken then, so the Engine re-reads the window.
func PageRefused(err error, page string, statuses ...int) bool {
	var se *StatusError
	if page == "" || !errors.As(err, &se) {
		return false
	}
	if len(statuses) == 0 {
		return se.Status == http.StatusBadRequest
	}
	return slices.Contains(statuses, se.Status)
}
