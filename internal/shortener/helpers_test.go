package shortener

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
)

// instance is one running shortener server.
type instance struct {
	url string
	svc *Service
}

// startInstance runs a real shortener server (the production wiring) on
// 127.0.0.1:0 until the test ends. wrap, if set, may replace the engines
// before the service is built (fault injection).
func startInstance(t testing.TB, e host.Engines, cfg Config, wrap func(*host.Deps)) *instance {
	t.Helper()
	inst := &instance{}
	inst.url = hosttest.Start(t, e, func(ctx context.Context, d *host.Deps) (host.System, error) {
		if wrap != nil {
			wrap(d)
		}
		svc, err := New(ctx, d, cfg)
		inst.svc = svc
		return svc, err
	})
	return inst
}

// testConfig is DefaultConfig with creation unlimited.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.CreateLimit = "off"
	return cfg
}

var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, method, url, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, url, raw, err)
		}
	}
	return r
}

func (r response) str(key string) string {
	s, _ := r.body[key].(string)
	return s
}

func mustStatus(t *testing.T, r response, want int, what string) {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: status %d, want %d (body %s)", what, r.status, want, r.raw)
	}
	if want >= 400 && r.str("error") == "" {
		t.Fatalf("%s: error response without a JSON error body: %q", what, r.raw)
	}
}

func createLink(t *testing.T, base, body string) response {
	t.Helper()
	r := do(t, "POST", base+"/api/v1/links", body, "Content-Type", "application/json")
	mustStatus(t, r, http.StatusCreated, "create "+body)
	return r
}

func counterValue(s *Service, source string) float64 {
	return testutil.ToFloat64(s.lookups.WithLabelValues(source))
}
