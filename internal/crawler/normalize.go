package crawler

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Normalize returns the canonical form of an absolute http(s) URL, so that
// the spellings of one resource are one key in the URL-seen set:
//
//   - scheme and host in lower case, a trailing dot off the host, the
//     default port (80, 443) dropped, user info dropped;
//   - the fragment dropped (it never reaches the server);
//   - percent-escapes in upper case, and unreserved characters (letters,
//     digits, - . _ ~) that were escaped, unescaped;
//   - dot segments removed (RFC 3986 §5.2.4), an empty path made "/";
//   - query parameters sorted by name, the values of one name kept in
//     their order (a server that reads ?a=1&a=2 as a list sees the same
//     list); an empty query dropped.
//
// Query order is the one rule that is not safe for every server; it is
// safe for the forms and links crawled here, and it folds the most common
// source of duplicate URLs (links that add parameters in another order).
func Normalize(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("crawler: %w", err)
	}
	return normalizeURL(u)
}

// Resolve makes href (as found in a page at base) absolute and normal.
func Resolve(base *url.URL, href string) (string, error) {
	ref, err := url.Parse(strings.TrimSpace(href))
	if err != nil {
		return "", fmt.Errorf("crawler: %w", err)
	}
	return normalizeURL(base.ResolveReference(ref))
}

var errNotHTTP = errors.New("crawler: not an http(s) URL with a host")

func normalizeURL(u *url.URL) (string, error) {
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", errNotHTTP
	}
	host := strings.ToLower(u.Hostname())
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return "", errNotHTTP
	}
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if strings.Contains(host, ":") { // IPv6
		b.WriteString("[" + host + "]")
	} else {
		b.WriteString(host)
	}
	if port != "" {
		b.WriteString(":" + port)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(removeDotSegments(normalizeEscapes(path)))
	if q := normalizeQuery(u.RawQuery); q != "" {
		b.WriteString("?" + q)
	}
	return b.String(), nil
}

// normalizeEscapes upper-cases percent-escapes and unescapes the
// unreserved characters.
func normalizeEscapes(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b.WriteByte(s[i])
			continue
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(s[i+1 : i+3]))
		}
		i += 2
	}
	return b.String()
}

// removeDotSegments is RFC 3986's algorithm on an absolute path.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
}

func normalizeQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" {
			kept = append(kept, normalizeEscapes(p))
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return queryName(kept[i]) < queryName(kept[j]) })
	return strings.Join(kept, "&")
}

func queryName(p string) string {
	name, _, _ := strings.Cut(p, "=")
	return name
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// HostKey is a URL's politeness key: its host and port in lower case
// (the form Normalize writes). ok is false for a URL that is not absolute
// http(s).
func HostKey(normal string) (string, bool) {
	rest, ok := strings.CutPrefix(normal, "http://")
	if !ok {
		if rest, ok = strings.CutPrefix(normal, "https://"); !ok {
			return "", false
		}
	}
	host, _, _ := strings.Cut(rest, "/")
	host, _, _ = strings.Cut(host, "?")
	return host, host != ""
}
