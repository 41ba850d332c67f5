package dynamo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/dynamo/client"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

func serve(t *testing.T, n *Node) *httptest.Server {
	t.Helper()
	h := httpx.Instrument("dynamo", httpx.NewMetrics(prometheus.NewRegistry()), n.MaxBody(), n.log, n.Handler())
	srv := httptest.NewServer(httpx.JSONErrors(h))
	t.Cleanup(srv.Close)
	return srv
}

// The HTTP contract through the Go client: binary-safe values, 204 with a
// context, 300 with siblings, 404, and a delete with context.
func TestHTTPContract(t *testing.T) {
	cfg := testConfig()
	cfg.MaxValue = 1000
	c := newCluster(t, 21, cfg, "n1", "n2", "n3")
	a, b := client.New(serve(t, c.node("n1")).URL), client.New(serve(t, c.node("n2")).URL)
	ctx := context.Background()
	key := "user/42 profile?x" // slashes, spaces and query characters are part of the key
	binary := []byte{0, 1, 2, 255, '\n'}
	c1, err := a.Put(ctx, key, binary, "", 0)
	if err != nil || c1 == "" {
		t.Fatalf("put: %q %v", c1, err)
	}
	res, err := b.Get(ctx, key, 0)
	if err != nil || len(res.Values) != 1 || string(res.Values[0]) != string(binary) || res.Context == "" {
		t.Fatalf("get: %+v %v", res, err)
	}
	// Two writers from the same read: siblings, as 300 with JSON.
	if _, err := a.Put(ctx, key, []byte("x"), res.Context, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, key, []byte("y"), res.Context, 0); err != nil {
		t.Fatal(err)
	}
	res, err = a.Get(ctx, key, 3)
	if err != nil || !res.Conflict() || len(res.Values) != 2 {
		t.Fatalf("siblings: %+v %v", res, err)
	}
	// Resolve, then delete with the context: 404 afterwards.
	c2, err := b.Put(ctx, key, []byte("z"), res.Context, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Delete(ctx, key, c2, 3); err != nil {
		t.Fatal(err)
	}
	if res, err := b.Get(ctx, key, 3); err != nil || res.Found() {
		t.Fatalf("after delete: %+v %v", res, err)
	}
	// The cluster document.
	raw, err := a.Cluster(ctx)
	var info ClusterInfo
	if err != nil || json.Unmarshal(raw, &info) != nil || len(info.Members) != 3 || info.Members[0].Share < 0.1 {
		t.Fatalf("cluster: %s %v", raw, err)
	}
}

// Bad input gets a 400 with a JSON body, never a crash; too few replicas
// a 503 that says how many answered.
func TestHTTPErrors(t *testing.T) {
	cfg := testConfig()
	cfg.MaxValue = 1000
	c := newCluster(t, 22, cfg, "n1", "n2", "n3")
	srv := serve(t, c.node("n1"))
	do := func(method, path, ctxHeader, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if ctxHeader != "" {
			req.Header.Set(ContextHeader, ctxHeader)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	long := url.PathEscape(strings.Repeat("k", 1025))
	for _, tc := range []struct {
		name, method, path, ctx, body string
		status                        int
		says                          string
	}{
		{"long key", "PUT", "/kv/" + long, "", "v", 400, "limit is 1024"},
		{"long key read", "GET", "/kv/" + long, "", "", 400, "limit is 1024"},
		{"big value", "PUT", "/kv/k", "", strings.Repeat("v", 1001), 400, "limit of 1000"},
		{"bad context", "PUT", "/kv/k", "not base64!", "v", 400, ContextHeader},
		{"bad context encoding", "DELETE", "/kv/k", "AQ", "", 400, ContextHeader},
		{"w too large", "PUT", "/kv/k?w=4", "", "v", 400, "?w=4"},
		{"r zero", "GET", "/kv/k?r=0", "", "", 400, "?r=0"},
		{"r not a number", "GET", "/kv/k?r=two", "", "", 400, "?r=two"},
		{"empty key", "PUT", "/kv/", "", "v", 400, "empty key"},
		{"missing", "GET", "/kv/nothing-here", "", "", 404, "not found"},
		{"peer RPC is not on the client port", "POST", "/internal/rpc", "", "\xff\x00garbage", 404, ""},
		{"wrong method", "PATCH", "/kv/k", "", "", 405, "not allowed"},
	} {
		status, body := do(tc.method, tc.path, tc.ctx, tc.body)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
		if status >= 400 && !json.Valid([]byte(body)) {
			t.Errorf("%s: body is not JSON: %s", tc.name, body)
		}
	}
	c.crash("n2")
	c.crash("n3")
	status, body := do("PUT", "/kv/k?w=3", "", "v")
	if status != 503 || !strings.Contains(body, "reached 1 of the 3") {
		t.Fatalf("W=3 with one node: %d %s", status, body)
	}
}

// Malformed node-to-node messages are refused, whatever the bytes.
func FuzzHandle(f *testing.F) {
	f.Add([]byte{byte(opReplicaPut), 1, 'k', 0, 0})
	f.Add(replicaPut([]byte("k"), "", nil))
	f.Add([]byte{byte(opLeaves), 0, 0, 4, 200})
	f.Add([]byte{byte(opCoordinate), 1, 'k', 2, 2, 0, 0, 0, 1})
	f.Add([]byte{byte(opIssued), 1, 'k', 4, 'n', '1', '.', 'x'})
	dir := f.TempDir()
	cfg := testConfig()
	cfg.ID, cfg.DataDir = "n1", dir
	n, err := Open(cfg, NewStatic("n1"), NewNetwork(1).Transport("n1"))
	if err != nil {
		f.Fatal(err)
	}
	defer n.Close()
	f.Fuzz(func(t *testing.T, msg []byte) {
		resp := n.Handle(context.Background(), msg)
		if len(resp) == 0 {
			t.Fatal("empty response")
		}
		if _, err := parseResponse(resp); err != nil {
			if re, ok := err.(*RemoteError); ok && re.Status == http.StatusInternalServerError {
				t.Fatalf("message %x: %d %s", msg, re.Status, re.Message)
			}
		}
	})
}
