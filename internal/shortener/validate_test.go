package shortener

import (
	"strings"
	"testing"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

func TestURLValidator(t *testing.T) {
	v := NewURLValidator("http://127.0.0.1:8080/shortener")
	good := []string{
		"https://example.com", "http://example.com/a?b=c#d", "HTTPS://EXAMPLE.COM/x",
		"https://example.com:8443/p", "http://127.0.0.1:9999/other-port", "https://例え.jp/",
		"https://example.com/" + strings.Repeat("a", MaxURLLength-len("https://example.com/")),
	}
	for _, u := range good {
		if err := v.Validate(u); err != nil {
			t.Errorf("Validate(%q) = %v", u, err)
		}
	}
	bad := []string{
		"", "example.com", "/relative", "ftp://example.com", "javascript:alert(1)", "mailto:a@b.c",
		"http://", "http:///path", "http://user:pass@example.com/", "https://exa mple.com",
		"https://example.com/\x00", "http:example.com",
		"https://example.com/" + strings.Repeat("a", MaxURLLength),
		// back at the shortener itself, in every spelling of this machine
		"http://127.0.0.1:8080/shortener/abc", "http://localhost:8080/x", "http://[::1]:8080/x",
		"HTTP://LOCALHOST:8080/x", "http://localhost.:8080/",
		// …including the spellings a browser also resolves to it
		"http://127.1:8080/x", "http://2130706433:8080/x", "http://0x7f000001:8080/x", "http://0177.0.0.1:8080/x",
		"http://0.0.0.0:8080/x", "http://[::ffff:127.0.0.1]:8080/x", "http://foo.localhost:8080/x", "http://127.0.0.1:08080/x",
		"http://127.0.0.2:8080/x", "http://0x7f.1:8080/x", "http://[::]:8080/x", "http://0:8080/x",
	}
	for _, u := range bad {
		err := v.Validate(u)
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Errorf("Validate(%q) = %v, want invalid", u, err)
		}
	}
	// A public host: only that host and port are "self".
	pub := NewURLValidator("https://sho.rt")
	if pub.Validate("https://sho.rt/abc") == nil || pub.Validate("https://sho.rt:443/abc") == nil {
		t.Error("link to the public host accepted")
	}
	if err := pub.Validate("http://sho.rt:8080/abc"); err != nil {
		t.Errorf("another port of the public host: %v", err)
	}
}

func TestCanonicalHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1": "127.0.0.1", "127.1": "127.0.0.1", "2130706433": "127.0.0.1", "0x7f000001": "127.0.0.1",
		"0177.0.0.1": "127.0.0.1", "0x7f.0.0.1": "127.0.0.1", "127.0.1": "127.0.0.1", "0": "0.0.0.0",
		"::ffff:127.0.0.1": "127.0.0.1", "::1": "::1", "EXAMPLE.com.": "example.com",
		"256.0.0.1": "256.0.0.1", "1.2.3.4.5": "1.2.3.4.5", "08.0.0.1": "08.0.0.1", "example.123": "example.123",
		"4294967295": "255.255.255.255", "4294967296": "4294967296",
	} {
		if got := canonicalHost(in); got != want {
			t.Errorf("canonicalHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidateAlias(t *testing.T) {
	for _, a := range []string{"abc", "my-link", "A_b-9", strings.Repeat("x", 32)} {
		if err := ValidateAlias(a); err != nil {
			t.Errorf("ValidateAlias(%q) = %v", a, err)
		}
	}
	for _, a := range []string{"", "ab", strings.Repeat("x", 33), "a b", "a/b", "ünï", "a.b", "api", "HEALTHZ", "metrics"} {
		if ValidateAlias(a) == nil {
			t.Errorf("ValidateAlias(%q) accepted", a)
		}
	}
}

func TestAgentFamily(t *testing.T) {
	cases := map[string]string{
		"": "unknown",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36":               "chrome",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0.2210.91": "edge",
		"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0":                                                        "firefox",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15":            "safari",
		"Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 OPR/106.0":                     "opera",
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)":                                                      "bot",
		"curl/8.5.0": "curl", "Wget/1.21": "wget", "Go-http-client/1.1": "library", "Something/1.0": "other",
	}
	for ua, want := range cases {
		if got := AgentFamily(ua); got != want {
			t.Errorf("AgentFamily(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestReferrerHost(t *testing.T) {
	cases := map[string]string{
		"": "direct", "https://News.Example.com/a?b": "news.example.com", "not a url": "invalid",
		"https://xn--r8jz45g.jp/": "xn--r8jz45g.jp", "https://例え.jp/": "invalid", "http://[::1]:80/": "::1",
	}
	for ref, want := range cases {
		if got := ReferrerHost(ref); got != want {
			t.Errorf("ReferrerHost(%q) = %q, want %q", ref, got, want)
		}
	}
}

func FuzzURLValidator(f *testing.F) {
	for _, s := range []string{"https://example.com", "http://localhost:8080/x", "javascript:x", "http://[::1", "%zz"} {
		f.Add(s)
	}
	v := NewURLValidator("http://127.0.0.1:8080/shortener")
	f.Fuzz(func(t *testing.T, s string) {
		err := v.Validate(s)
		if err != nil && apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("Validate(%q): non-validation error %v", s, err)
		}
		if err == nil && (len(s) > MaxURLLength || !(strings.HasPrefix(strings.ToLower(s), "http://") || strings.HasPrefix(strings.ToLower(s), "https://"))) {
			t.Fatalf("Validate(%q) accepted", s)
		}
	})
}

func FuzzValidateAlias(f *testing.F) {
	for _, s := range []string{"abc", "a", "api", "ab-_9", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := ValidateAlias(s); err == nil {
			if len(s) < MinAliasLength || len(s) > MaxAliasLength || !plausibleCode(s) {
				t.Fatalf("ValidateAlias(%q) accepted an alias a redirect could never find", s)
			}
		} else if apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("ValidateAlias(%q): %v", s, err)
		}
	})
}
