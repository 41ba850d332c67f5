package crawler

import (
	"net/url"
	"testing"
)

func TestNormalize(t *testing.T) {
	cases := []struct{ in, want string }{
		{"http://Example.COM", "http://example.com/"},
		{"HTTP://example.com:80/a", "http://example.com/a"},
		{"https://example.com:443/", "https://example.com/"},
		{"https://example.com:8443/", "https://example.com:8443/"},
		{"http://example.com./a", "http://example.com/a"},
		{"http://user:pw@example.com/", "http://example.com/"},
		{"http://example.com/a#frag", "http://example.com/a"},
		{"http://example.com/a/./b/../c", "http://example.com/a/c"},
		{"http://example.com/a/b/..", "http://example.com/a/"},
		{"http://example.com/../../x", "http://example.com/x"},
		{"http://example.com/a/.", "http://example.com/a/"},
		{"http://example.com/%7euser/%2f%41", "http://example.com/~user/%2FA"},
		{"http://example.com/?b=2&a=1&b=1", "http://example.com/?a=1&b=2&b=1"},
		{"http://example.com/?", "http://example.com/"},
		{"http://example.com/?&&a=1&", "http://example.com/?a=1"},
		{" http://example.com/x ", "http://example.com/x"},
		{"http://[::1]:8080/", "http://[::1]:8080/"},
		{"http://host3.test:8080/page/1.html", "http://host3.test:8080/page/1.html"},
	}
	for _, c := range cases {
		got, err := Normalize(c.in)
		if err != nil || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		again, err := Normalize(got)
		if err != nil || again != got {
			t.Errorf("Normalize is not idempotent on %q: %q, %v", got, again, err)
		}
	}
	for _, bad := range []string{"", "mailto:a@b.c", "ftp://example.com/", "javascript:alert(1)", "http://", "/relative", "http://%zz/", "http:///path", "http://example.com/a%zz"} {
		if got, err := Normalize(bad); err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", bad, got)
		}
	}
}

func TestResolve(t *testing.T) {
	base, _ := url.Parse("http://host1.test/dir/page.html?x=1")
	cases := []struct{ href, want string }{
		{"other.html", "http://host1.test/dir/other.html"},
		{"../up.html", "http://host1.test/up.html"},
		{"/root?b=1&a=2", "http://host1.test/root?a=2&b=1"},
		{"//HOST2.test/x", "http://host2.test/x"},
		{"#top", "http://host1.test/dir/page.html?x=1"},
		{"?y=2", "http://host1.test/dir/page.html?y=2"},
		{"https://host3.test:443/", "https://host3.test/"},
	}
	for _, c := range cases {
		got, err := Resolve(base, c.href)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", c.href, got, err, c.want)
		}
	}
	for _, bad := range []string{"mailto:x@y.z", "javascript:void(0)", "data:text/html,hi"} {
		if got, err := Resolve(base, bad); err == nil {
			t.Errorf("Resolve(%q) = %q, want an error", bad, got)
		}
	}
}

func TestHostKey(t *testing.T) {
	for in, want := range map[string]string{
		"http://host1.test/a":        "host1.test",
		"http://host1.test:8080?x=1": "host1.test:8080",
		"https://h.test":             "h.test",
	} {
		if got, ok := HostKey(in); !ok || got != want {
			t.Errorf("HostKey(%q) = %q, %v", in, got, ok)
		}
	}
	if _, ok := HostKey("ftp://x/"); ok {
		t.Error("HostKey of ftp")
	}
}

func TestPattern(t *testing.T) {
	for in, want := range map[string]string{
		"http://host12.test:8080/calendar/2026/01/": "host12.test:8080 /calendar/#/#/",
		"http://host3.test/p/17.html?page=2":        "host3.test /p/#.html?page=#",
		"http://a.test/":                            "a.test /",
	} {
		if got := pattern(in); got != want {
			t.Errorf("pattern(%q) = %q, want %q", in, got, want)
		}
	}
}
