package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// AdminToken guards admin operations.
type AdminToken struct {
	token string
}

// AdminTokenFile is where a node keeps its generated token, under its data directory.
const AdminTokenFile = "admin-token"

// NewAdminToken wraps a given token (tests, and --admin-token).
func NewAdminToken(token string) (*AdminToken, error) {
	token = strings.TrimSpace(token)
	if len(token) < 16 {
		return nil, fmt.Errorf("auth: admin token is %d characters; want at least 16", len(token))
	}
	return &AdminToken{token: token}, nil
}

// LoadAdminToken returns the given token, or else the one in
// DATA/admin-token, made (random, mode 0600) if absent. where says which,
// for the node's start line.
func LoadAdminToken(given, dataDir string) (tok *AdminToken, where string, err error) {
	if given != "" {
		t, err := NewAdminToken(given)
		return t, "--admin-token", err
	}
	path := filepath.Join(dataDir, AdminTokenFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, "", fmt.Errorf("auth: %w", err)
		}
		text := NewKeyText()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, "", fmt.Errorf("auth: admin token: %w", err)
		}
		_, werr := f.WriteString(text + "\n")
		if err := errors.Join(werr, f.Close()); err != nil {
			return nil, "", fmt.Errorf("auth: admin token: %w", err)
		}
		raw = []byte(text)
	} else if err != nil {
		return nil, "", fmt.Errorf("auth: admin token: %w", err)
	}
	t, err := NewAdminToken(string(raw))
	return t, path, err
}

// Value is the token itself (for a caller that must present it).
func (a *AdminToken) Value() string { return a.token }

// Matches reports, in constant time, whether token is the admin token
// (false for a nil AdminToken).
func (a *AdminToken) Matches(token string) bool {
	return a != nil && subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) == 1
}

// Check accepts a request carrying `Authorization: Bearer TOKEN`.
func (a *AdminToken) Check(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return apperr.E(apperr.Unauthorized, "this is an admin operation: send Authorization: Bearer <admin token>")
	}
	got, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || !a.Matches(got) {
		return apperr.E(apperr.Forbidden, "wrong admin token")
	}
	return nil
}

// Require serves h only to requests that pass Check.
func (a *AdminToken) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.Check(r); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// RequireFunc is Require for a handler function.
func (a *AdminToken) RequireFunc(h http.HandlerFunc) http.Handler { return a.Require(h) }

// Header sets req's Authorization to present the token.
func (a *AdminToken) Header(req *http.Request) { req.Header.Set("Authorization", "Bearer "+a.token) }
