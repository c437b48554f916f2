package windowtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/collectors"
	"github.com/provtrail/provtrail/internal/hclconfig"
)

// Decode parses src as the body of a collector block in agent.hcl and
// decodes it with decode, failing t on any error.
func Decode[C any](t *testing.T, src string, decode func(hcl.Body, *hcl.EvalContext) (C, hcl.Diagnostics)) C {
	t.Helper()
	file, diags := hclsyntax.ParseConfig([]byte(src), "agent.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, diags := decode(file.Body, hclconfig.EvalContext(".", nil))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

// Restarts runs a collector the way an agent does across crashes: newC
// makes it (anew after every crash), each Run starts from the sink's
// committed position, and a run ends when the clock reaches stop() (asked
// at the start of each run). A run the sink crashes is restarted, after
// onCrash (when set) has been called with the number of crashes so far;
// a run that ends any other way than by its context's cancellation fails
// t. Restarts returns the number of crashes.
func Restarts[C collectors.Collector](t *testing.T, clock *Clock, sink *Sink, stop func() time.Time,
	newC func() (C, error), onCrash func(crashes int)) int {
	t.Helper()
	crashes := 0
	for {
		c, err := newC()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		clock.StopAt(stop(), cancel)
		err = c.Run(ctx, sink.Position(), sink)
		cancel()
		if errors.Is(err, ErrCrash) {
			crashes++
			if onCrash != nil {
				onCrash(crashes)
			}
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		return crashes
	}
}

// At returns a stop function for Restarts that always answers t.
func At(t time.Time) func() time.Time { return func() time.Time { return t } }
