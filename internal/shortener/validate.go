package shortener

import (
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// Limits on what a link may hold.
const (
	MaxURLLength   = 2048
	MinAliasLength = 3
	MaxAliasLength = 32
	MaxExpiresIn   = 10 * 365 * 24 * 3600 // seconds: ten years
)

var aliasPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{3,32}$`)

// reservedAliases would shadow the server's own routes.
var reservedAliases = map[string]bool{"api": true, "healthz": true, "readyz": true, "metrics": true}

// ValidateAlias checks a custom alias.
func ValidateAlias(alias string) error {
	if !aliasPattern.MatchString(alias) {
		return apperr.E(apperr.Invalid, "alias must be %d–%d characters of A–Z, a–z, 0–9, '_' and '-'", MinAliasLength, MaxAliasLength)
	}
	if reservedAliases[strings.ToLower(alias)] {
		return apperr.E(apperr.Invalid, "alias %q is reserved", alias)
	}
	return nil
}

// plausibleCode is the cheap check a redirect makes before any lookup: a
// code can only be something we could have issued.
func plausibleCode(code string) bool {
	if len(code) < 1 || len(code) > MaxAliasLength {
		return false
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// URLValidator checks target URLs; it knows the shortener's own hosts so
// that a link cannot point back at the shortener (a redirect loop, or a
// way to hide one short link behind another).
type URLValidator struct {
	self map[string]bool // host:port, lower case
}

// NewURLValidator builds a validator for a shortener reachable at publicURL.
func NewURLValidator(publicURL string) URLValidator {
	v := URLValidator{self: map[string]bool{}}
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return v
	}
	host, port := strings.ToLower(u.Hostname()), portOf(u)
	v.self[net.JoinHostPort(host, port)] = true
	if isLoopback(host) { // every spelling of this machine at the same port
		for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
			v.self[net.JoinHostPort(h, port)] = true
		}
	}
	return v
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

func isLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate checks that raw is an absolute http(s) URL of at most
// MaxURLLength bytes with a host, and that it does not point at the
// shortener itself.
func (v URLValidator) Validate(raw string) error {
	if raw == "" {
		return apperr.E(apperr.Invalid, "url is required")
	}
	if len(raw) > MaxURLLength {
		return apperr.E(apperr.Invalid, "url is longer than %d bytes", MaxURLLength)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] == 0x7f {
			return apperr.E(apperr.Invalid, "url must not contain spaces or control characters")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return apperr.E(apperr.Invalid, "url is not a valid URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return apperr.E(apperr.Invalid, "url must be an absolute http:// or https:// URL")
	}
	if u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return apperr.E(apperr.Invalid, "url must have a host")
	}
	if u.User != nil {
		return apperr.E(apperr.Invalid, "url must not carry credentials")
	}
	u.Scheme = scheme
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if v.self[net.JoinHostPort(host, portOf(u))] {
		return apperr.E(apperr.Invalid, "url points back at this shortener")
	}
	return nil
}
