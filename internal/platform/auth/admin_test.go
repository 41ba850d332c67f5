package auth

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminTokenFileIsMadeOnceAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, where, err := LoadAdminToken("", dir)
	if err != nil {
		t.Fatal(err)
	}
	if where != filepath.Join(dir, AdminTokenFile) {
		t.Fatalf("where = %q", where)
	}
	st, err := os.Stat(where)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", st.Mode(), err)
	}
	b, _, err := LoadAdminToken("", dir)
	if err != nil || b.Value() != a.Value() {
		t.Fatalf("a restart made a new token: %v", err)
	}
	c, where, err := LoadAdminToken("given-token-0123456789", dir)
	if err != nil || c.Value() != "given-token-0123456789" || where != "--admin-token" {
		t.Fatalf("a given token is not used: %v %q", err, where)
	}
	if _, _, err := LoadAdminToken("short", dir); err == nil {
		t.Fatal("a short token was accepted")
	}
}

func TestAdminTokenGuardsTheHandler(t *testing.T) {
	a, err := NewAdminToken("s3cret-admin-token-42")
	if err != nil {
		t.Fatal(err)
	}
	h := a.RequireFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for name, tc := range map[string]struct {
		header string
		want   int
	}{
		"none":      {"", http.StatusUnauthorized},
		"wrong":     {"Bearer s3cret-admin-token-43", http.StatusForbidden},
		"prefix":    {"Bearer s3cret-admin-token-4", http.StatusForbidden},
		"basic":     {"Basic s3cret-admin-token-42", http.StatusForbidden},
		"no scheme": {"s3cret-admin-token-42", http.StatusForbidden},
		"right":     {"Bearer s3cret-admin-token-42", http.StatusNoContent},
	} {
		req := httptest.NewRequest("PUT", "/admin", nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d", name, rec.Code, tc.want)
		}
		if tc.want >= 400 && !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s: body %q is not a JSON error", name, rec.Body.String())
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	a.Header(req)
	if a.Check(req) != nil {
		t.Fatal("Header does not present the token")
	}
}
