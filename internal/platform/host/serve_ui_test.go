package host

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The console is served under /ui/ (its handler sees the path without the
// prefix), /ui redirects there, and everything else is the system's.
func TestBesideUI(t *testing.T) {
	tag := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Served-By", name)
			_, _ = w.Write([]byte(r.URL.Path))
		})
	}
	h := besideUI(tag("ui"), tag("app"))
	for _, c := range []struct{ path, by, body string }{
		{"/ui/", "ui", "/"},
		{"/ui/systems/raftkv", "ui", "/systems/raftkv"},
		{"/uix", "app", "/uix"},
		{"/api/v1/albums/1", "app", "/api/v1/albums/1"},
		{"/", "app", "/"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Header().Get("X-Served-By") != c.by || rec.Body.String() != c.body {
			t.Errorf("%s: served by %q with %q, want %q with %q", c.path, rec.Header().Get("X-Served-By"), rec.Body, c.by, c.body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui?tab=metrics", nil))
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/ui/?tab=metrics" {
		t.Fatalf("/ui: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}
