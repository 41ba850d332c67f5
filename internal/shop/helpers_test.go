package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// engineSets are the databases the shop's end-to-end tests run on.
var engineSets = []struct {
	name string
	make func(t *testing.T) host.Engines
}{
	{"SQLite", func(t *testing.T) host.Engines { return host.Engines{} }},
	{"PostgreSQL", func(t *testing.T) host.Engines { return host.Engines{DB: testsvc.Postgres(t)} }},
	{"MariaDB", func(t *testing.T) host.Engines { return host.Engines{DB: testsvc.MySQL(t)} }},
}

// testShop is a running shop and the downstream simulator it calls.
type testShop struct {
	base string
	svc  *Service
	down *downstream.Simulator
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ReconcileEvery = 0 // tests call Reconcile themselves
	return cfg
}

// startShop runs the shop against a fresh downstream simulator.
func startShop(t *testing.T, e host.Engines, cfg Config) *testShop {
	t.Helper()
	ts := &testShop{down: downstream.New(7)}
	srv := httptest.NewServer(ts.down.Handler(downstreamAdmin))
	t.Cleanup(func() {
		// A stalled request would keep Close waiting: lift stalls first.
		for _, s := range downstream.Services {
			_ = ts.down.SetFaults(s, downstream.Faults{})
		}
		srv.Close()
	})
	cfg.Downstream = srv.URL
	if e.AdminToken == "" {
		e.AdminToken = testAdminToken
	}
	ts.base = hosttest.Start(t, e, func(ctx context.Context, d *host.Deps) (host.System, error) {
		svc, err := New(ctx, d, cfg)
		ts.svc = svc
		return svc, err
	})
	return ts
}

// call sends a JSON request (body marshalled unless it is a string) and
// decodes a 2xx answer into out. Every answer must be JSON.
func api(t testing.TB, method, url string, body any, hdr map[string]string, out any) (int, string) {
	t.Helper()
	code, raw, _ := apiH(t, method, url, body, hdr, out)
	return code, raw
}

func apiH(t testing.TB, method, url string, body any, hdr map[string]string, out any) (int, string, http.Header) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if isCatalogWrite(method, url) {
		req.Header.Set("Authorization", "Bearer "+testAdminToken) // the shop's operator; TestCatalogWritesNeedTheAdminToken goes without
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s %s: %d with Content-Type %q: %s", method, url, resp.StatusCode, ct, raw)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
	return resp.StatusCode, string(raw), resp.Header
}

func (ts *testShop) product(t testing.TB, name, category string, price, stock int64) productJSON {
	t.Helper()
	var p productJSON
	if code, raw := api(t, "POST", ts.base+"/api/v1/products",
		map[string]any{"name": name, "category": category, "price_cents": price, "stock": stock}, nil, &p); code != http.StatusCreated {
		t.Fatalf("create product: %d %s", code, raw)
	}
	return p
}

func (ts *testShop) getProduct(t testing.TB, id string) productJSON {
	t.Helper()
	var p productJSON
	if code, raw := api(t, "GET", ts.base+"/api/v1/products/"+id, nil, nil, &p); code != http.StatusOK {
		t.Fatalf("get product: %d %s", code, raw)
	}
	return p
}

// cart opens a cart holding the given product IDs and quantities.
func (ts *testShop) cart(t testing.TB, lines ...any) string {
	t.Helper()
	var c struct {
		CartID string `json:"cartId"`
	}
	if code, raw := api(t, "POST", ts.base+"/api/v1/carts", nil, nil, &c); code != http.StatusCreated {
		t.Fatalf("create cart: %d %s", code, raw)
	}
	for i := 0; i+1 < len(lines); i += 2 {
		if code, raw := api(t, "POST", ts.base+"/api/v1/carts/"+c.CartID+"/items",
			map[string]any{"productId": lines[i], "quantity": lines[i+1]}, nil, nil); code != http.StatusOK {
			t.Fatalf("add item: %d %s", code, raw)
		}
	}
	return c.CartID
}

func (ts *testShop) checkout(t testing.TB, cartID, key string) (int, orderJSON, string, http.Header) {
	t.Helper()
	var o orderJSON
	code, raw, h := apiH(t, "POST", ts.base+"/api/v1/carts/"+cartID+"/checkout", nil, map[string]string{"Idempotency-Key": key}, &o)
	return code, o, raw, h
}

func key(i int) string { return fmt.Sprintf("key-%d-%d", time.Now().UnixNano(), i) }

const testAdminToken = "shop-test-admin-token"

// downstreamAdmin guards the test simulator's control API.
var downstreamAdmin, _ = auth.NewAdminToken("downstream-test-admin-token")

func isCatalogWrite(method, url string) bool {
	return (method == http.MethodPost || method == http.MethodPut) && strings.Contains(url, "/api/v1/products")
}
