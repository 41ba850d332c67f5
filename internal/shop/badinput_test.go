package shop

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
)

func TestShopBadInput(t *testing.T) {
	ts := startShop(t, host.Engines{}, testConfig())
	p := ts.product(t, "Good product", "misc", 100, 1)
	cart := ts.cart(t)
	long := strings.Repeat("x", 201)
	for _, c := range []struct {
		method, path, body string
		hdr                map[string]string
		want               int
	}{
		{"POST", "/api/v1/products", `{"name":"A thing","category":"misc","price_cents":100}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"A thing","category":"Misc","price_cents":100,"stock":1}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"!","category":"misc","price_cents":100,"stock":1}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"` + long + `","category":"misc","price_cents":100,"stock":1}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"A thing","category":"misc","price_cents":0,"stock":1}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"A thing","category":"misc","price_cents":100,"stock":-1}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"A thing","category":"misc","price_cents":1e99,"stock":1}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"A thing","category":"misc","price_cents":100,"stock":1,"extra":1}`, nil, 400},
		{"POST", "/api/v1/products", `{"name":"A\u0000thing","category":"misc","price_cents":100,"stock":1}`, nil, 400},
		{"POST", "/api/v1/products", `not json`, nil, 400},
		{"POST", "/api/v1/products", ``, nil, 400},
		{"GET", "/api/v1/products/abc", ``, nil, 400},
		{"GET", "/api/v1/products/0", ``, nil, 400},
		{"GET", "/api/v1/products/99999999999999999999", ``, nil, 400},
		{"GET", "/api/v1/products/12345", ``, nil, 404},
		{"PUT", "/api/v1/products/" + p.ProductID, `{}`, nil, 400},
		{"PUT", "/api/v1/products/" + p.ProductID, `{"stock":"many"}`, nil, 400},
		{"PUT", "/api/v1/products/12345", `{"stock":3}`, nil, 404},
		{"GET", "/api/v1/products?q=a", ``, nil, 400},
		{"GET", "/api/v1/products?q=one+two+three+four+five", ``, nil, 400},
		{"GET", "/api/v1/products?q=" + strings.Repeat("ab+", 100), ``, nil, 400},
		{"GET", "/api/v1/products?category=A_B", ``, nil, 400},
		{"GET", "/api/v1/products?cursor=-5", ``, nil, 400},
		{"GET", "/api/v1/products?limit=1000", ``, nil, 400},
		{"GET", "/api/v1/carts/xyz", ``, nil, 400},
		{"GET", "/api/v1/carts/12345", ``, nil, 404},
		{"POST", "/api/v1/carts/" + cart + "/items", `{"productId":"` + p.ProductID + `"}`, nil, 400},
		{"POST", "/api/v1/carts/" + cart + "/items", `{"productId":"` + p.ProductID + `","quantity":0}`, nil, 400},
		{"POST", "/api/v1/carts/" + cart + "/items", `{"productId":"` + p.ProductID + `","quantity":101}`, nil, 400},
		{"POST", "/api/v1/carts/" + cart + "/items", `{"productId":"-1","quantity":1}`, nil, 400},
		{"POST", "/api/v1/carts/" + cart + "/items", `{"productId":true,"quantity":1}`, nil, 400},
		{"POST", "/api/v1/carts/" + cart + "/items", `{"productId":"12345","quantity":1}`, nil, 404},
		{"POST", "/api/v1/carts/12345/items", `{"productId":"` + p.ProductID + `","quantity":1}`, nil, 404},
		{"POST", "/api/v1/carts/" + cart + "/checkout", ``, nil, 400},
		{"POST", "/api/v1/carts/" + cart + "/checkout", ``, map[string]string{"Idempotency-Key": strings.Repeat("k", 101)}, 400},
		{"POST", "/api/v1/carts/" + cart + "/checkout", ``, map[string]string{"Idempotency-Key": "has space"}, 400},
		{"POST", "/api/v1/carts/12345/checkout", ``, map[string]string{"Idempotency-Key": "k"}, 404},
		{"GET", "/api/v1/orders/12345", ``, nil, 404},
	} {
		code, raw := api(t, c.method, ts.base+c.path, c.body, c.hdr, nil)
		if code != c.want {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, code, raw, c.want)
		}
		if !strings.Contains(raw, `"error"`) {
			t.Errorf("%s %s: error body without an error field: %s", c.method, c.path, raw)
		}
	}
}

// FuzzShopJSON: any body on the JSON routes gets a 2xx or a 4xx with a
// JSON error, never a 5xx.
func FuzzShopJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"Red shoes","category":"shoes","price_cents":100,"stock":3}`,
		`{"productId":"1","quantity":1}`, `{"productId":1,"quantity":1}`, `{"price_cents":5}`, `{"stock":0}`,
		`{"name":"x\u00e9 y","category":"a-b","price_cents":1,"stock":0}`, `[]`, `null`, `{"productId":"00"}`,
	} {
		for route := range 4 {
			f.Add(uint8(route), []byte(s))
		}
	}
	cfg := testConfig()
	base := hosttest.Start(f, host.Engines{AdminToken: testAdminToken}, func(ctx context.Context, d *host.Deps) (host.System, error) { return New(ctx, d, cfg) })
	var p productJSON
	api(f, "POST", base+"/api/v1/products", `{"name":"Fuzz item","category":"fuzz","price_cents":10,"stock":1000000}`, nil, &p)
	var c struct {
		CartID string `json:"cartId"`
	}
	api(f, "POST", base+"/api/v1/carts", nil, nil, &c)
	productID, cartID := p.ProductID, c.CartID
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		method, path := "POST", "/api/v1/products"
		switch route % 4 {
		case 1:
			method, path = "PUT", "/api/v1/products/"+productID
		case 2:
			path = "/api/v1/carts/" + cartID + "/items"
		case 3:
			method, path = "GET", "/api/v1/products?q="+url.QueryEscape(string(body))
		}
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			return // not a valid URL: nothing reaches the server
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 || !slices.Contains([]string{"application/json"}, strings.Split(resp.Header.Get("Content-Type"), ";")[0]) {
			t.Fatalf("%s %s %q: %d %s", method, path, body, resp.StatusCode, raw)
		}
	})
}

func TestDownstreamIsIdempotent(t *testing.T) {
	d := downstream.New(1)
	srv := httptest.NewServer(d.Handler(nil))
	defer srv.Close()
	c := newDownstreamClient(srv.URL, nil, true, DefaultConfig().Inventory, DefaultConfig().Payment, nil)
	ctx := context.Background()
	id1, err := c.Charge(ctx, "k1", "o1", 500)
	if err != nil {
		t.Fatal(err)
	}
	if id2, err := c.Charge(ctx, "k1", "o1", 500); err != nil || id2 != id1 {
		t.Fatalf("repeat charge = %q, %v; want %q", id2, err, id1)
	}
	if _, err := c.Charge(ctx, "k1", "o1", 600); err == nil {
		t.Fatal("the key charged a different amount")
	}
	if err := c.Void(ctx, "k1"); err != errAlreadyCharged {
		t.Fatalf("void after a charge = %v", err)
	}
	if err := c.Void(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Charge(ctx, "k2", "o2", 500); err != errVoided {
		t.Fatalf("charge after a void = %v", err)
	}
	if id, found, err := c.PaymentStatus(ctx, "k1"); err != nil || !found || id != id1 {
		t.Fatalf("status k1 = %q %v %v", id, found, err)
	}
	if _, found, err := c.PaymentStatus(ctx, "k3"); err != nil || found {
		t.Fatalf("status k3 = %v %v", found, err)
	}
	for range 2 {
		if err := c.Reserve(ctx, "o1", []downstream.LineItem{{ProductID: "1", Quantity: 2}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Release(ctx, "o1"); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Charges != 1 || st.RepeatedCharges != 1 || st.Voids != 1 || st.Reservations != 1 || st.Releases != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestQueryPlan(t *testing.T) {
	if got := nameTerms("Über-Cool  RED shoes, red; a 4K TV", 10); !slices.Equal(got, []string{"über", "cool", "red", "shoes", "4k", "tv"}) {
		t.Fatalf("nameTerms = %q", got)
	}
	if got := queryPlan([]string{"tv", "shoes", "red"}, "apparel"); !slices.Equal(got, []string{"shoes", "red", "tv", "c:apparel"}) {
		t.Fatalf("queryPlan = %q", got)
	}
	if got := queryPlan(nil, ""); len(got) != 0 {
		t.Fatalf("empty plan = %q", got)
	}
}
