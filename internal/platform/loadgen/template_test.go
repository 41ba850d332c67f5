package loadgen

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestTemplate(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	tpl, err := ParseTemplate("/items/{{seq}}?r={{rand 5 7}}&id={{uuid}}&x={{ seq }}")
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Static() {
		t.Fatal("dynamic template reported static")
	}
	uuidRe := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[int]bool{}
	for seq := uint64(0); seq < 300; seq++ {
		out := string(tpl.AppendTo(nil, seq, rng))
		var rest string
		if !strings.HasPrefix(out, "/items/"+strconv.FormatUint(seq, 10)+"?r=") {
			t.Fatalf("render %d: %q", seq, out)
		}
		rest = strings.TrimPrefix(out, "/items/"+strconv.FormatUint(seq, 10)+"?r=")
		r, _ := strconv.Atoi(rest[:1])
		if r < 5 || r > 7 {
			t.Fatalf("rand out of range: %q", out)
		}
		seen[r] = true
		id := rest[len("5&id=") : len("5&id=")+36]
		if !uuidRe.MatchString(id) {
			t.Fatalf("uuid %q", id)
		}
		if !strings.HasSuffix(out, "&x="+strconv.FormatUint(seq, 10)) {
			t.Fatalf("second seq: %q", out)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("rand 5 7 produced %v", seen)
	}
	static, _ := ParseTemplate("/plain?a=1")
	if !static.Static() || static.String() != "/plain?a=1" {
		t.Fatal("static template")
	}
	for _, bad := range []string{"{{", "{{seq", "{{}}", "{{nope}}", "{{rand 1}}", "{{rand 5 1}}", "{{rand a b}}", "{{seq 1}}"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("ParseTemplate(%q) accepted", bad)
		}
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"/a/{{seq}}", "{{rand -5 5}}", "{{uuid}}{{uuid}}", "{{", "}}{{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		_ = tpl.AppendTo(nil, 7, rand.New(rand.NewPCG(1, 1)))
		if tpl.Static() && tpl.String() != s {
			t.Fatalf("static %q renders %q", s, tpl.String())
		}
	})
}

func TestUnescapePlaceholders(t *testing.T) {
	cases := map[string]string{
		"/b%7B%7Brand%200%209%7D%7D":             "/b{{rand 0 9}}",
		"/a%20b/%7B%7Bseq%7D%7D":                 "/a%20b/{{seq}}",
		"/plain":                                 "/plain",
		"/%7B%7Brand%201%202%7D%7D%20x%7B%7Bseq": "/{{rand 1 2}}%20x{{seq",
	}
	for in, want := range cases {
		if got := unescapePlaceholders(in); got != want {
			t.Errorf("unescapePlaceholders(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValuePlaceholderAndHeaderTemplates(t *testing.T) {
	p, err := compileHTTP(HTTPTarget{URL: "http://127.0.0.1:1/carts/{{value}}/checkout", Method: "POST",
		Headers: []string{"Idempotency-Key: k-{{value}}"}, Values: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	for seq, want := range []string{"a", "b", "a"} {
		req := string(p.appendRequest(nil, uint64(seq), nil))
		if !strings.HasPrefix(req, "POST /carts/"+want+"/checkout HTTP/1.1\r\n") || !strings.Contains(req, "\r\nIdempotency-Key: k-"+want+"\r\n") {
			t.Fatalf("request %d = %q", seq, req)
		}
	}
	if _, err := compileHTTP(HTTPTarget{URL: "http://127.0.0.1:1/{{value}}"}); err == nil {
		t.Fatal("{{value}} without Values compiled")
	}
}
