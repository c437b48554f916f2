package window

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Chain reads each window from several fetchers in turn (Graph directory
// audits then Azure Activity Log; CloudTrail per account and region), as
// one window of the Engine: the window is drained only when every fetcher
// has been. Page tokens are "INDEX:INNER".
func Chain(fetchers ...Fetcher) Fetcher {
	return chain(fetchers)
}

type chain []Fetcher

func (c chain) Fetch(ctx context.Context, w Window, page string) (Page, error) {
	i, inner := 0, ""
	if page != "" {
		idx, rest, ok := strings.Cut(page, ":")
		n, err := strconv.Atoi(idx)
		if !ok || err != nil || n < 0 || n >= len(c) {
			return Page{}, fmt.Errorf("chained page token %.40q: %w", page, ErrPageToken)
		}
		i, inner = n, rest
	}
	p, err := c[i].Fetch(ctx, w, inner)
	if err != nil {
		return Page{}, err
	}
	switch {
	case p.Next != "":
		p.Next = strconv.Itoa(i) + ":" + p.Next
	case i+1 < len(c):
		p.Next = strconv.Itoa(i+1) + ":"
	}
	return p, nil
}
