package shortener

import (
	"bytes"
	"net/url"
	"strings"
)

// AgentFamily reduces a User-Agent header to a small set of families, so
// that stats group by browser rather than by thousands of version strings.
// Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
func AgentFamily(ua string) string {
	if ua == "" {
		return "unknown"
	}
	// Lower-case into a stack buffer: this runs on every redirect, and
	// strings.ToLower would allocate for almost every real User-Agent.
	var buf [256]byte
	l := buf[:0]
	for i := 0; i < len(ua) && i < len(buf); i++ {
		c := ua[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		l = append(l, c)
	}
	has := func(s string) bool { return bytes.Contains(l, []byte(s)) }
	prefix := func(s string) bool { return bytes.HasPrefix(l, []byte(s)) }
	switch {
	case has("bot") || has("crawl") || has("spider") || has("slurp"):
		return "bot"
	case prefix("curl/"):
		return "curl"
	case prefix("wget/"):
		return "wget"
	case has("edg/") || has("edge/"):
		return "edge"
	case has("opr/") || has("opera"):
		return "opera"
	case has("firefox/") || has("fxios/"):
		return "firefox"
	case has("chrome/") || has("crios/") || has("chromium/"):
		return "chrome"
	case has("safari/"):
		return "safari"
	case prefix("go-http-client/") || prefix("python-") || prefix("wrk"):
		return "library"
	}
	return "other"
}

// ReferrerHost reduces a Referer header to its host ("direct" when absent),
// lower case, ASCII only and at most 255 bytes, so that it fits any column.
func ReferrerHost(ref string) string {
	if ref == "" {
		return "direct"
	}
	u, err := url.Parse(ref)
	if err != nil || u.Hostname() == "" {
		return "invalid"
	}
	h := strings.ToLower(u.Hostname())
	for i := 0; i < len(h); i++ {
		if h[i] >= 0x80 {
			return "invalid"
		}
	}
	if len(h) > 255 {
		h = h[:255]
	}
	return h
}
