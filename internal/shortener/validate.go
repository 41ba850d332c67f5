package shortener

import (
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
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
// way to hide one short link behind another). Hosts are compared in the
// canonical form a browser would connect to (canonicalHost): 127.1,
// 2130706433, 0x7f000001, 0177.0.0.1 and [::ffff:127.0.0.1] are all
// 127.0.0.1, and port 018082 is port 18082.
type URLValidator struct {
	self map[string]bool // canonical host:port
	// loopbackPort, when the shortener is on this machine's loopback, is
	// its port: every spelling of this machine at that port is "self".
	loopbackPort string
}

// NewURLValidator builds a validator for a shortener reachable at publicURL.
func NewURLValidator(publicURL string) URLValidator {
	v := URLValidator{self: map[string]bool{}}
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return v
	}
	host, port := canonicalHost(u.Hostname()), portOf(u)
	v.self[net.JoinHostPort(host, port)] = true
	if isThisMachine(host) {
		v.loopbackPort = port
	}
	return v
}

// portOf is the URL's port as a plain decimal number (the scheme's
// default when absent).
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err == nil {
			return strconv.Itoa(n)
		}
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// canonicalHost is host as a browser resolves it: lower case without the
// trailing dot; an IPv4 address in any of the forms the WHATWG URL
// standard accepts (decimal, octal and hex parts, fewer than four parts)
// written as a.b.c.d; an IPv4-mapped IPv6 address as its IPv4 address.
func canonicalHost(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, ok := parseIPv4(host); ok {
		return ip.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return host
}

// parseIPv4 follows the WHATWG URL standard's IPv4 parser: 1–4 parts
// separated by dots, each decimal, octal (leading 0) or hex (0x); the last
// part fills the bytes the others leave.
func parseIPv4(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 || host == "" {
		return netip.Addr{}, false
	}
	nums := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x"):
			p, base = p[2:], 16
		case len(p) > 1 && p[0] == '0':
			p, base = p[1:], 8
		}
		if p == "" {
			if base != 16 {
				return netip.Addr{}, false
			}
			p = "0" // "0x" alone is zero
		}
		n, err := strconv.ParseUint(p, base, 64)
		if err != nil {
			return netip.Addr{}, false
		}
		nums[i] = n
	}
	var v uint64
	for i, n := range nums[:len(nums)-1] {
		if n > 255 {
			return netip.Addr{}, false
		}
		v |= n << (8 * (3 - i))
	}
	last := nums[len(nums)-1]
	if last >= 1<<(8*(5-len(nums))) {
		return netip.Addr{}, false
	}
	v |= last
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// isThisMachine: a loopback name or address, or the unspecified address
// (connecting to 0.0.0.0 or :: reaches this machine).
func isThisMachine(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.IsLoopback() || ip.IsUnspecified())
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
	host, port := canonicalHost(u.Hostname()), portOf(u)
	if v.self[net.JoinHostPort(host, port)] || v.loopbackPort == port && isThisMachine(host) {
		return apperr.E(apperr.Invalid, "url points back at this shortener")
	}
	return nil
}
