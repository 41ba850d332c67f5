package shortener

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// No request, however malformed, gets a 5xx: every path, method and body
// goes through the real handler (with the production middleware) on a real
// service on embedded defaults.
func FuzzHTTPNever5xx(f *testing.F) {
	seeds := []struct{ method, path, body string }{
		{"POST", "/api/v1/links", `{"url":"https://example.com"}`},
		{"POST", "/api/v1/links", `{"url":"https://example.com","alias":"abc","expires_in":60}`},
		{"POST", "/api/v1/links", `{"url":"https://example.com","expires_in":99999999999999999999}`},
		{"POST", "/api/v1/links", `{"url":"\u0000"}`},
		{"POST", "/api/v1/links", `{{{{`},
		{"GET", "/abc", ""},
		{"GET", "/api/v1/links/abc/stats", ""},
		{"DELETE", "/api/v1/links/abc", ""},
		{"GET", "/%00", ""},
		{"PATCH", "/api/v1/links", "x"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body)
	}
	cfg := testConfig()
	inst := startInstance(f, host.Engines{}, cfg, nil)
	h := httpx.Instrument("shortener", httpx.NewMetrics(prometheus.NewRegistry()), 1<<16,
		slog.New(slog.DiscardHandler), inst.svc.Handler())
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return // not a method a client can send
		}
		u, err := url.Parse(path)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		req := httptest.NewRequest("GET", "/", strings.NewReader(body))
		req.Method, req.URL, req.RequestURI = method, u, path
		req.Header.Set("Authorization", "Bearer "+body)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q %q: %d %s", method, path, body, rec.Code, rec.Body.String())
		}
	})
}
