package window

import (
	"net/url"
	"strconv"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/provtrail/provtrail/internal/hclconfig"
)

// DefaultSettings are the shared defaults with the source's pace.
func DefaultSettings(requestsPerMinute float64) Settings {
	return Settings{
		Config: Config{
			SettleLag:      DefaultSettleLag,
			Overlap:        DefaultOverlap,
			MaxWindow:      DefaultMaxWindow,
			PollInterval:   DefaultPollInterval,
			RescanInterval: DefaultRescanInterval,
			RescanLookback: DefaultRescanLookback,
		},
		RequestsPerMinute: requestsPerMinute,
	}
}

// Block is embedded in a cloud collector's config struct: DecodeBlock
// fills it with the shared attributes' settings and the block's range.
type Block struct {
	Window Settings
	rng    hcl.Range
}

func (b *Block) block() *Block { return b }

// DecodeBlock decodes a cloud collector's block: the source's own
// attributes into src (a pointer to its config struct, which embeds Block
// and has a `hcl:",remain"` field that remain points at), then the shared
// attributes from what remains, starting from def. It returns nil when the
// source's own attributes did not decode, else src with the diagnostics of
// both steps.
func DecodeBlock[P interface{ block() *Block }](body hcl.Body, ctx *hcl.EvalContext, src P, remain *hcl.Body, def Settings) (P, hcl.Diagnostics) {
	diags := gohcl.DecodeBody(body, ctx, src)
	if diags.HasErrors() {
		var none P
		return none, diags
	}
	b := src.block()
	if r, ok := body.(interface{ MissingItemRange() hcl.Range }); ok {
		b.rng = r.MissingItemRange()
	}
	var ds hcl.Diagnostics
	b.Window, ds = DecodeAttrs(*remain, ctx, def)
	return src, append(diags, ds...)
}

// Check collects the diagnostics of a config's Validate, each pointing at
// the block.
type Check struct {
	rng   hcl.Range
	diags hcl.Diagnostics
}

// Check starts the checks of the block.
func (b *Block) Check() *Check { return &Check{rng: b.rng} }

// Bad adds an error.
func (c *Check) Bad(summary, detail string) {
	c.diags = append(c.diags, hclconfig.Error(c.rng, summary, detail))
}

// URL parses raw, or def when raw is empty, as an API endpoint (BaseURL),
// adding "Invalid what" when it is not one. Both empty: an optional
// endpoint left out, nil and no error.
func (c *Check) URL(what, raw, def string) *url.URL {
	if raw == "" {
		raw = def
	}
	if raw == "" {
		return nil
	}
	u, err := BaseURL(raw)
	if err != nil {
		c.Bad("Invalid "+what, err.Error())
	}
	return u
}

// PageSize checks a page_size attribute (0: the source's default) against
// the API's largest page.
func (c *Check) PageSize(n, max int) {
	if n < 0 || n > max {
		c.Bad("Invalid page_size", "page_size must be between 1 and "+strconv.Itoa(max)+".")
	}
}

// Diagnostics returns what the checks found.
func (c *Check) Diagnostics() hcl.Diagnostics { return c.diags }
