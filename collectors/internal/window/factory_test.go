package window

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/provtrail/provtrail/collectors"
)

type testConfig struct {
	Name   string   `hcl:"name"`
	Remain hcl.Body `hcl:",remain"`
	bad    bool
}

func (c *testConfig) Validate() hcl.Diagnostics {
	if c.bad {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "bad block"}}
	}
	return nil
}

type testCollector struct{ env Env }

func (*testCollector) Run(ctx context.Context, _ collectors.Position, _ collectors.Emitter) error {
	return ctx.Err()
}

type testParser struct{}

func (testParser) Parse(context.Context, io.Reader, string, collectors.Emitter) error { return nil }

func newTestCollector(set collectors.Settings, c *testConfig, opt Options) (*testCollector, error) {
	env, err := NewEnv("test", set, c, opt)
	if err != nil {
		return nil, err
	}
	return &testCollector{env: env}, nil
}

func decodeTest(body hcl.Body, ctx *hcl.EvalContext) (*testConfig, hcl.Diagnostics) {
	c := &testConfig{}
	if diags := gohcl.DecodeBody(body, ctx, c); diags.HasErrors() {
		return nil, diags
	}
	return c, nil
}

func TestNewFactory(t *testing.T) {
	f := NewFactory("test", "a test source", decodeTest, newTestCollector,
		func(collectors.Settings) testParser { return testParser{} })
	if _, err := collectors.NewRegistry(f); err != nil {
		t.Fatal(err)
	}
	parse := func(src string) hcl.Body {
		file, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return file.Body
	}
	// A block that does not decode gives no config (not a typed nil).
	cfg, diags := f.DecodeConfig(parse(`nam = "x"`), nil)
	if !diags.HasErrors() || cfg != nil {
		t.Fatalf("bad block: %v %v", cfg, diags)
	}
	cfg, diags = f.DecodeConfig(parse(`name = "x"`), nil)
	if diags.HasErrors() || cfg == nil {
		t.Fatal(diags)
	}
	col, err := f.New(collectors.Settings{Name: "n"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := col.(*testCollector).env
	if env.Clock == nil || env.Client == nil || env.Client.Timeout != DefaultTimeout || env.Logger == nil {
		t.Errorf("defaults not filled: %+v", env)
	}
	// An invalid config: the error names type and instance, and the
	// collector is a nil interface, not a nil *testCollector.
	col, err = f.New(collectors.Settings{Name: "n"}, &testConfig{bad: true})
	if col != nil || err == nil || !strings.HasPrefix(err.Error(), "test n: ") {
		t.Errorf("invalid config: %v, %v", col, err)
	}
	if _, err := f.New(collectors.Settings{}, otherConfig{}); err == nil || !strings.Contains(err.Error(), "config is window.otherConfig") {
		t.Errorf("foreign config: %v", err)
	}
	if p, err := f.NewParser(collectors.Settings{}); err != nil || p == nil {
		t.Errorf("parser: %v %v", p, err)
	}
}

type otherConfig struct{}

func (otherConfig) Validate() hcl.Diagnostics { return nil }

func TestEnvErrorf(t *testing.T) {
	env, err := NewEnv("okta", collectors.Settings{Name: "corp"}, &testConfig{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("no token")
	if err := env.Errorf(cause); err.Error() != "okta corp: no token" || !errors.Is(err, cause) {
		t.Errorf("Errorf: %v", err)
	}
}

func TestSendAndPageRefused(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen = append(seen, r.Method+" "+r.Header.Get("User-Agent")+" "+r.Header.Get("X-Test")+" "+string(b))
		if r.URL.Query().Get("page") != "" {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	env, err := NewEnv("t", collectors.Settings{}, &testConfig{}, Options{HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	h := env.HTTP(env.Client, 6000)
	header := func(req *http.Request) error { req.Header.Set("X-Test", "1"); return nil }
	resp, err := h.Send(context.Background(), http.MethodPost, srv.URL, []byte("body"), header)
	if err != nil || string(resp.Body) != "ok" {
		t.Fatalf("%v %v", resp, err)
	}
	_, err = h.Send(context.Background(), http.MethodGet, srv.URL+"?page=2", nil, nil)
	if err == nil {
		t.Fatal("422 accepted")
	}
	if PageRefused(err, "") || PageRefused(err, "2") || !PageRefused(err, "2", 400, 422) {
		t.Error("PageRefused: first page, default 400, or listed 422 misjudged")
	}
	if PageRefused(errors.New("io"), "2") {
		t.Error("a transport error is not a refused page")
	}
	failing := func(*http.Request) error { return errors.New("no credentials") }
	if _, err := h.Send(context.Background(), http.MethodGet, srv.URL, nil, failing); err == nil {
		t.Error("header error ignored")
	}
	want := []string{"POST provtrail 1 body", "GET provtrail  "}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("requests %q, want %q", seen, want)
	}
}
