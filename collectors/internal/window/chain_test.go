package window_test

import (
	"context"
	"errors"
	"testing"

	"github.com/provtrail/provtrail/collectors/internal/window"
)

func TestChain(t *testing.T) {
	pages := func(name string, n int) window.Fetcher {
		return window.FetchFunc(func(_ context.Context, _ window.Window, page string) (window.Page, error) {
			k := 0
			if page != "" {
				k = int(page[0] - '0')
			}
			p := window.Page{}
			if k+1 < n {
				p.Next = string(rune('0' + k + 1))
			}
			_ = name
			return p, nil
		})
	}
	c := window.Chain(pages("a", 2), pages("b", 1), pages("c", 3))
	var tokens []string
	page := ""
	for {
		p, err := c.Fetch(context.Background(), window.Window{}, page)
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, page)
		if p.Next == "" {
			break
		}
		page = p.Next
	}
	want := []string{"", "0:1", "1:", "2:", "2:1", "2:2"}
	if len(tokens) != len(want) {
		t.Fatalf("tokens %q, want %q", tokens, want)
	}
	for i := range want {
		if tokens[i] != want[i] {
			t.Fatalf("tokens %q, want %q", tokens, want)
		}
	}
	if _, err := c.Fetch(context.Background(), window.Window{}, "9:x"); !errors.Is(err, window.ErrPageToken) {
		t.Fatalf("bad index: %v", err)
	}
}
