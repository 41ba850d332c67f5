package shop

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
)

func send(t *testing.T, method, url, body, token string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The observed attack: anyone could set a price to 1 cent and buy at it.
// Catalog writes need the admin token; reads and buying do not.
func TestCatalogWritesNeedTheAdminToken(t *testing.T) {
	ts := startShop(t, host.Engines{}, testConfig())
	p := ts.product(t, "Walnut desk", "furniture", 50000, 5)
	for _, tok := range []string{"", "not-the-admin-token"} {
		want := http.StatusUnauthorized
		if tok != "" {
			want = http.StatusForbidden
		}
		if st := send(t, "PUT", ts.base+"/api/v1/products/"+p.ProductID, `{"price_cents":1}`, tok); st != want {
			t.Errorf("price change with token %q: %d, want %d", tok, st, want)
		}
		if st := send(t, "POST", ts.base+"/api/v1/products", `{"name":"Fake","category":"misc","price_cents":1,"stock":1}`, tok); st != want {
			t.Errorf("create with token %q: %d, want %d", tok, st, want)
		}
	}
	if got := ts.getProduct(t, p.ProductID); got.PriceCents != 50000 {
		t.Fatalf("the price moved to %d", got.PriceCents)
	}
	if st := send(t, "PUT", ts.base+"/api/v1/products/"+p.ProductID, `{"price_cents":45000}`, testAdminToken); st != http.StatusOK {
		t.Fatalf("the operator's price change: %d", st)
	}
	if got := ts.getProduct(t, p.ProductID); got.PriceCents != 45000 {
		t.Fatalf("price after the operator's change: %d", got.PriceCents)
	}
	if st := send(t, "GET", ts.base+"/api/v1/products?category=furniture", "", ""); st != http.StatusOK {
		t.Fatalf("a search without a token: %d", st)
	}
}

// The simulator's control API (stall payments, change latency) needs its
// token; without an admin there is none at all.
func TestDownstreamControlNeedsTheToken(t *testing.T) {
	d := downstream.New(1)
	guarded := httptest.NewServer(d.Handler(downstreamAdmin))
	defer guarded.Close()
	if st := send(t, "PUT", guarded.URL+"/control/payment", `{"stalled":true}`, ""); st != http.StatusUnauthorized {
		t.Fatalf("stall without a token: %d, want 401", st)
	}
	if st := send(t, "GET", guarded.URL+"/stats", "", "wrong-token-0123456789"); st != http.StatusForbidden {
		t.Fatalf("stats with a wrong token: %d, want 403", st)
	}
	if d.Faults("payment").Stalled {
		t.Fatal("payment stalled by an outsider")
	}
	if st := send(t, "PUT", guarded.URL+"/control/payment", `{"latency":"1ms"}`, downstreamAdmin.Value()); st != http.StatusOK {
		t.Fatalf("the operator's change: %d", st)
	}
	open := httptest.NewServer(d.Handler(nil))
	defer open.Close()
	if st := send(t, "PUT", open.URL+"/control/payment", `{"stalled":true}`, downstreamAdmin.Value()); st != http.StatusNotFound {
		t.Fatalf("control API without an admin: %d, want 404", st)
	}
}

// With no --downstream the shop calls its simulator in process, without
// a port: a whole purchase goes through it.
func TestInProcessDownstreamServesAPurchase(t *testing.T) {
	cfg := testConfig()
	cfg.Downstream = ""
	base := hosttest.Start(t, host.Engines{AdminToken: testAdminToken}, func(ctx context.Context, d *host.Deps) (host.System, error) {
		return New(ctx, d, cfg)
	})
	var p productJSON
	if code, raw := api(t, "POST", base+"/api/v1/products", map[string]any{"name": "Lamp", "category": "light", "price_cents": 900, "stock": 3}, nil, &p); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, raw)
	}
	var cart struct {
		CartID string `json:"cartId"`
	}
	if code, raw := api(t, "POST", base+"/api/v1/carts", map[string]any{}, nil, &cart); code != http.StatusCreated {
		t.Fatalf("cart: %d %s", code, raw)
	}
	if code, raw := api(t, "POST", base+"/api/v1/carts/"+cart.CartID+"/items", map[string]any{"productId": p.ProductID, "quantity": 1}, nil, nil); code >= 300 {
		t.Fatalf("add: %d %s", code, raw)
	}
	var order struct {
		State string `json:"state"`
	}
	code, raw := api(t, "POST", base+"/api/v1/carts/"+cart.CartID+"/checkout", nil, map[string]string{"Idempotency-Key": "in-process-1"}, &order)
	if code != http.StatusCreated || order.State != "paid" {
		t.Fatalf("checkout through the in-process downstream: %d %s", code, raw)
	}
}
