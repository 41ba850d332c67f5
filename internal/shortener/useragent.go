package shortener

import (
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
	l := strings.ToLower(ua)
	switch {
	case strings.Contains(l, "bot") || strings.Contains(l, "crawl") || strings.Contains(l, "spider") || strings.Contains(l, "slurp"):
		return "bot"
	case strings.HasPrefix(l, "curl/"):
		return "curl"
	case strings.HasPrefix(l, "wget/"):
		return "wget"
	case strings.Contains(l, "edg/") || strings.Contains(l, "edge/"):
		return "edge"
	case strings.Contains(l, "opr/") || strings.Contains(l, "opera"):
		return "opera"
	case strings.Contains(l, "firefox/") || strings.Contains(l, "fxios/"):
		return "firefox"
	case strings.Contains(l, "chrome/") || strings.Contains(l, "crios/") || strings.Contains(l, "chromium/"):
		return "chrome"
	case strings.Contains(l, "safari/"):
		return "safari"
	case strings.HasPrefix(l, "go-http-client/") || strings.HasPrefix(l, "python-") || strings.HasPrefix(l, "wrk"):
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
