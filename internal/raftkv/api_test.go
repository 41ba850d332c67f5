package raftkv

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/httpx"
)

func TestHTTPAPI(t *testing.T) {
	c := newCluster(t, 9, 3)
	c.leader()
	srv := func(id uint64) *httptest.Server {
		api := NewAPI(c.nodes[id], 600*time.Millisecond, 1000)
		s := httptest.NewServer(httpx.JSONErrors(httpx.Instrument("raftkv", httpx.NewMetrics(prometheus.NewRegistry()), 1<<20, c.nodes[id].log, api.Handler())))
		t.Cleanup(s.Close)
		return s
	}
	s1, s3 := srv(1), srv(3)
	do := func(s *httptest.Server, method, path, body string, hdr ...string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
		return resp.StatusCode, m
	}
	if st, m := do(s1, "PUT", "/v1/kv/a/b", "hello"); st != 200 || m["revision"] != 1.0 {
		t.Fatalf("put: %d %v", st, m)
	}
	if st, m := do(s3, "GET", "/v1/kv/a/b", ""); st != 200 || m["value"] != "hello" || m["value_b64"] != "aGVsbG8=" || m["revision"] != 1.0 {
		t.Fatalf("get via a follower or the leader: %d %v", st, m)
	}
	if st, m := do(s3, "PUT", "/v1/kv/a/b?if_revision=0", "x"); st != 412 || m["revision"] != 1.0 {
		t.Fatalf("create-if-absent on an existing key: %d %v", st, m)
	}
	if st, m := do(s3, "PUT", "/v1/kv/a/b?if_revision=1", "\xff\xfe"); st != 200 || m["revision"] != 2.0 {
		t.Fatalf("CAS: %d %v", st, m)
	}
	// A stale read is served from the node's own state: ask node 3, which
	// applied the CAS before answering it (node 1 may not have yet).
	if st, m := do(s3, "GET", "/v1/kv/a/b?stale=true", ""); st != 200 || m["value"] != nil || m["value_b64"] != "//4=" {
		t.Fatalf("binary value: %d %v", st, m)
	}
	// A retried request (same client and number) is answered, not applied again.
	for i := 0; i < 2; i++ {
		if st, m := do(s1, "PUT", "/v1/kv/counter", "1", "X-Client-ID", "77", "X-Request-Seq", "5"); st != 200 || m["revision"] != 3.0 {
			t.Fatalf("attempt %d of a retried put: %d %v", i, st, m)
		}
	}
	if st, _ := do(s1, "PUT", "/v1/kv/counter", "1", "X-Client-ID", "77", "X-Request-Seq", "4"); st != 409 {
		t.Fatalf("an older request number: %d", st)
	}
	if st, m := do(s1, "DELETE", "/v1/kv/a/b?if_revision=2", ""); st != 200 || m["revision"] != 4.0 {
		t.Fatalf("delete: %d %v", st, m)
	}
	if st, _ := do(s3, "GET", "/v1/kv/a/b", ""); st != 404 {
		t.Fatalf("after delete: %d", st)
	}
	for _, bad := range []struct{ method, path, body string }{
		{"PUT", "/v1/kv/k?if_revision=-1", "v"},
		{"PUT", "/v1/kv/k?if_revision=x", "v"},
		{"PUT", "/v1/kv/" + url.PathEscape(strings.Repeat("k", 1025)), "v"},
		{"PUT", "/v1/kv/k", strings.Repeat("v", 1001)},
	} {
		if st, m := do(s1, bad.method, bad.path, bad.body); st != 400 || m["error"] == nil {
			t.Errorf("%s %s: %d %v", bad.method, bad.path[:min(len(bad.path), 40)], st, m)
		}
	}
	if st, _ := do(s1, "PUT", "/v1/kv/k", "v", "X-Client-ID", "x", "X-Request-Seq", "1"); st != 400 {
		t.Errorf("bad client ID: %d", st)
	}
	if st, m := do(s1, "GET", "/v1/cluster", ""); st != 200 || m["leader"] == 0.0 || len(m["members"].([]any)) != 3 {
		t.Fatalf("cluster: %d %v", st, m)
	}
	// No quorum: a bounded wait, then 503 — never a hang.
	c.crash(2)
	c.crash(3)
	start := time.Now()
	if st, m := do(s1, "PUT", "/v1/kv/k", "v"); st != 503 || time.Since(start) > 3*time.Second {
		t.Fatalf("write without quorum: %d %v after %v", st, m, time.Since(start))
	}
	if st, _ := do(s1, "GET", "/v1/kv/counter", ""); st != 503 {
		t.Fatalf("linearizable read without quorum: %d", st)
	}
	if st, m := do(s1, "GET", "/v1/kv/counter?stale=true", ""); st != 200 || m["value"] != "1" {
		t.Fatalf("stale read without quorum: %d %v", st, m)
	}
}

// A write that gives up says how long it waited, not the request timeout:
// an unnumbered write stops after its first attempt.
func TestGivingUpSaysHowLongItWaited(t *testing.T) {
	c := newCluster(t, 10, 3)
	lead := c.leader()
	api := NewAPI(c.nodes[lead], 3*time.Second, 1000)
	s := httptest.NewServer(httpx.JSONErrors(api.Handler()))
	defer s.Close()
	for id := range c.nodes {
		if id != lead {
			c.crash(id)
		}
	}
	within := regexp.MustCompile(`within ([0-9.]+m?s)`)
	for _, numbered := range []bool{false, true} {
		req, _ := http.NewRequest("PUT", s.URL+"/v1/kv/k", strings.NewReader("v"))
		if numbered {
			req.Header.Set("X-Client-ID", "7")
			req.Header.Set("X-Request-Seq", "1")
		}
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		m := within.FindSubmatch(raw)
		if resp.StatusCode != http.StatusServiceUnavailable || m == nil {
			t.Fatalf("numbered=%v: %d %s", numbered, resp.StatusCode, raw)
		}
		said, err := time.ParseDuration(string(m[1]))
		if err != nil || said > took || took-said > 300*time.Millisecond {
			t.Fatalf("numbered=%v: said %s, took %v: %s", numbered, m[1], took, raw)
		}
	}
}
