package shop

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestShopEndToEnd(t *testing.T) {
	for _, es := range engineSets {
		t.Run(es.name, func(t *testing.T) {
			ts := startShop(t, es.make(t), testConfig())
			base := ts.base

			// Catalog and search.
			boots := ts.product(t, "Trail running shoes, red", "shoes", 8999, 5)
			blue := ts.product(t, "Road running shoes blue", "shoes", 7999, 3)
			jacket := ts.product(t, "Running jacket", "apparel", 12000, 2)
			ts.product(t, "Espresso machine", "kitchen", 45000, 1)
			names := func(url string) []string {
				var out struct {
					Products []productJSON `json:"products"`
				}
				if code, raw := api(t, "GET", base+url, nil, nil, &out); code != http.StatusOK {
					t.Fatalf("GET %s: %d %s", url, code, raw)
				}
				var ns []string
				for _, p := range out.Products {
					ns = append(ns, p.Name)
				}
				return ns
			}
			for url, want := range map[string][]string{
				"/api/v1/products?q=running":                  {"Running jacket", "Road running shoes blue", "Trail running shoes, red"},
				"/api/v1/products?q=RUNNING+shoes":            {"Road running shoes blue", "Trail running shoes, red"},
				"/api/v1/products?q=running&category=apparel": {"Running jacket"},
				"/api/v1/products?category=kitchen":           {"Espresso machine"},
				"/api/v1/products?q=nothing":                  nil,
				"/api/v1/products?q=shoes&category=kitchen":   nil,
			} {
				if got := names(url); !slices.Equal(got, want) {
					t.Errorf("GET %s = %q, want %q", url, got, want)
				}
			}
			// Cursor pagination walks every product once, newest first.
			var all []string
			cursor := ""
			for range 10 {
				var page struct {
					Products   []productJSON `json:"products"`
					NextCursor string        `json:"nextCursor"`
				}
				api(t, "GET", base+"/api/v1/products?limit=3&cursor="+cursor, nil, nil, &page)
				for _, p := range page.Products {
					all = append(all, p.Name)
				}
				if cursor = page.NextCursor; cursor == "" {
					break
				}
			}
			if want := []string{"Espresso machine", "Running jacket", "Road running shoes blue", "Trail running shoes, red"}; !slices.Equal(all, want) {
				t.Errorf("paged listing = %q, want %q", all, want)
			}

			// Price and stock updates.
			var upd productJSON
			if code, raw := api(t, "PUT", base+"/api/v1/products/"+blue.ProductID, map[string]any{"price_cents": 6999}, nil, &upd); code != 200 || upd.PriceCents != 6999 || upd.Stock != 3 {
				t.Fatalf("PUT price: %d %s", code, raw)
			}
			if code, raw := api(t, "PUT", base+"/api/v1/products/"+jacket.ProductID, map[string]any{"stock": 4}, nil, &upd); code != 200 || upd.Stock != 4 {
				t.Fatalf("PUT stock: %d %s", code, raw)
			}

			// Cart and checkout. IDs may be strings or numbers.
			cart := ts.cart(t, boots.ProductID, 2, blue.ProductID, 1)
			if code, raw := api(t, "POST", base+"/api/v1/carts/"+cart+"/items", `{"productId":`+boots.ProductID+`,"quantity":1}`, nil, nil); code != 200 {
				t.Fatalf("add by number: %d %s", code, raw)
			}
			var c struct {
				Items      []cartItemJSON `json:"items"`
				TotalCents int64          `json:"totalCents"`
			}
			api(t, "GET", base+"/api/v1/carts/"+cart, nil, nil, &c)
			if len(c.Items) != 2 || c.TotalCents != 3*8999+6999 {
				t.Fatalf("cart = %+v", c)
			}
			code, o, raw, h := ts.checkout(t, cart, "k-1")
			if code != http.StatusCreated || o.State != "paid" || o.TotalCents != 3*8999+6999 || o.ChargeID == "" || h.Get("Location") == "" {
				t.Fatalf("checkout: %d %s", code, raw)
			}
			for _, it := range o.Items {
				if it.Name == "" {
					t.Fatalf("order item without its name: %s", raw)
				}
			}
			// The same key again: the same answer (status, Location, order), no second charge.
			code2, o2, raw2, h2 := ts.checkout(t, cart, "k-1")
			if code2 != code || h2.Get("Location") != h.Get("Location") || h2.Get("Idempotent-Replayed") != "true" ||
				o2.OrderID != o.OrderID || o2.ChargeID != o.ChargeID || raw2 != raw {
				t.Fatalf("repeated checkout: %d %s\nfirst: %d %s", code2, raw2, code, raw)
			}
			var fetched orderJSON
			if code, raw := api(t, "GET", base+"/api/v1/orders/"+o.OrderID, nil, nil, &fetched); code != http.StatusOK || fetched.Items[0].Name == "" {
				t.Fatalf("the order read back: %d %s", code, raw)
			}
			if st := ts.down.Stats(); st.Charges != 1 || st.Reservations != 1 {
				t.Fatalf("downstream saw %+v, want one charge and one reservation", st)
			}
			if p := ts.getProduct(t, boots.ProductID); p.Stock != 2 {
				t.Fatalf("stock after checkout = %d, want 2", p.Stock)
			}
			// Another key for the same cart; the key for another cart; a closed cart.
			if code, _, raw, _ := ts.checkout(t, cart, "k-2"); code != http.StatusConflict || !strings.Contains(raw, o.OrderID) {
				t.Fatalf("second key for a checked-out cart: %d %s", code, raw)
			}
			other := ts.cart(t, jacket.ProductID, 1)
			if code, _, raw, _ := ts.checkout(t, other, "k-1"); code != http.StatusConflict || !strings.Contains(raw, "Idempotency-Key") {
				t.Fatalf("key reused for another cart: %d %s", code, raw)
			}
			if code, raw := api(t, "POST", base+"/api/v1/carts/"+cart+"/items", map[string]any{"productId": jacket.ProductID, "quantity": 1}, nil, nil); code != http.StatusConflict {
				t.Fatalf("add to an ordered cart: %d %s", code, raw)
			}
			var got orderJSON
			if code, raw := api(t, "GET", base+"/api/v1/orders/"+o.OrderID, nil, nil, &got); code != 200 || got.State != "paid" || len(got.Items) != 2 {
				t.Fatalf("GET order: %d %s", code, raw)
			}
			// Out of stock: 409 naming the product, nothing taken.
			greedy := ts.cart(t, jacket.ProductID, 5)
			if code, _, raw, _ := ts.checkout(t, greedy, "k-3"); code != http.StatusConflict || !strings.Contains(raw, "out of stock") {
				t.Fatalf("oversized checkout: %d %s", code, raw)
			}
			if p := ts.getProduct(t, jacket.ProductID); p.Stock != 4 {
				t.Fatalf("stock after a refused checkout = %d, want 4", p.Stock)
			}
			empty := ts.cart(t)
			if code, _, raw, _ := ts.checkout(t, empty, "k-4"); code != http.StatusConflict {
				t.Fatalf("empty cart: %d %s", code, raw)
			}
		})
	}
}

// TestCheckoutNeverOversells races 30 single-unit checkouts (and a few
// repeats of each key) for 10 units: exactly 10 orders are paid.
func TestCheckoutNeverOversells(t *testing.T) {
	for _, es := range engineSets {
		t.Run(es.name, func(t *testing.T) {
			ts := startShop(t, es.make(t), testConfig())
			p := ts.product(t, "Limited edition vinyl", "music", 2500, 10)
			carts := make([]string, 30)
			for i := range carts {
				carts[i] = ts.cart(t, p.ProductID, 1)
			}
			var mu sync.Mutex
			paid := map[string]bool{}
			statuses := map[int]int{}
			var wg sync.WaitGroup
			for _, c := range carts {
				for range 2 { // each key sent twice, concurrently
					wg.Add(1)
					go func() {
						defer wg.Done()
						code, o, _, _ := ts.checkout(t, c, "race-"+c)
						mu.Lock()
						defer mu.Unlock()
						statuses[code]++
						if code < 300 {
							paid[o.OrderID] = true
						}
					}()
				}
			}
			wg.Wait()
			if len(paid) != 10 {
				t.Fatalf("%d orders paid for 10 units (statuses %v)", len(paid), statuses)
			}
			if statuses[http.StatusCreated]+statuses[http.StatusOK]+statuses[http.StatusConflict] != 60 {
				t.Fatalf("unexpected statuses %v", statuses)
			}
			if got := ts.getProduct(t, p.ProductID); got.Stock != 0 {
				t.Fatalf("stock = %d, want 0", got.Stock)
			}
			if st := ts.down.Stats(); st.Charges != 10 {
				t.Fatalf("%d charges for 10 orders", st.Charges)
			}
		})
	}
}

// A purchase in one request (POST /orders) is two write transactions —
// place, mark paid — where a cart built line by line is five; it is
// idempotent under its key, refuses a key reused for other lines, and a
// refused purchase takes no stock.
func TestBuyInOneRequest(t *testing.T) {
	for _, es := range engineSets {
		t.Run(es.name, func(t *testing.T) {
			ts := startShop(t, es.make(t), testConfig())
			a := ts.product(t, "Field notebook", "paper", 900, 10)
			b := ts.product(t, "Fountain pen", "paper", 4500, 2)
			buy := func(k string, items ...any) (int, orderJSON, string, http.Header) {
				t.Helper()
				var lines []map[string]any
				for i := 0; i+1 < len(items); i += 2 {
					lines = append(lines, map[string]any{"productId": items[i], "quantity": items[i+1]})
				}
				var o orderJSON
				code, raw, h := apiH(t, "POST", ts.base+"/api/v1/orders", map[string]any{"items": lines}, map[string]string{"Idempotency-Key": k}, &o)
				return code, o, raw, h
			}
			writes := ts.svc.store.db.Writes()
			code, o, raw, _ := buy("buy-1", a.ProductID, 2, b.ProductID, 1, a.ProductID, 1)
			if code != http.StatusCreated || o.State != "paid" || o.TotalCents != 3*900+4500 || len(o.Items) != 2 || o.CartID != "" {
				t.Fatalf("buy: %d %s", code, raw)
			}
			if n := ts.svc.store.db.Writes() - writes; n != 2 {
				t.Fatalf("a purchase in one request took %d write transactions, want 2", n)
			}
			if got := ts.getProduct(t, a.ProductID); got.Stock != 7 {
				t.Fatalf("stock of a = %d, want 7 (two lines of it merged)", got.Stock)
			}
			// The same key again: the same order, no second charge.
			code2, o2, raw2, h2 := buy("buy-1", b.ProductID, 1, a.ProductID, 3)
			if code2 != http.StatusCreated || o2.OrderID != o.OrderID || h2.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("replay: %d %s", code2, raw2)
			}
			if st := ts.down.Stats(); st.Charges != 1 {
				t.Fatalf("%d charges for one purchase", st.Charges)
			}
			if code, _, raw, _ := buy("buy-1", a.ProductID, 1); code != http.StatusConflict || !strings.Contains(raw, "Idempotency-Key") {
				t.Fatalf("a key reused for other lines: %d %s", code, raw)
			}
			// Refused purchases take nothing: the whole transaction rolls back.
			if code, _, raw, _ := buy("buy-2", a.ProductID, 1, b.ProductID, 5); code != http.StatusConflict || !strings.Contains(raw, "out of stock") {
				t.Fatalf("out of stock: %d %s", code, raw)
			}
			if code, _, raw, _ := buy("buy-3", a.ProductID, 1, "987654321", 1); code != http.StatusNotFound || !strings.Contains(raw, "987654321") {
				t.Fatalf("an unknown product: %d %s", code, raw)
			}
			if got := ts.getProduct(t, a.ProductID); got.Stock != 7 {
				t.Fatalf("stock of a = %d after refused purchases, want 7", got.Stock)
			}
			for name, body := range map[string]any{
				"no items":      map[string]any{"items": []any{}},
				"zero quantity": map[string]any{"items": []any{map[string]any{"productId": a.ProductID, "quantity": 0}}},
				"no product":    map[string]any{"items": []any{map[string]any{"quantity": 1}}},
				"unknown field": map[string]any{"items": []any{}, "coupon": "FREE"},
				"not an object": "[1, 2]",
			} {
				if code, raw := api(t, "POST", ts.base+"/api/v1/orders", body, map[string]string{"Idempotency-Key": "bad-" + name}, nil); code != http.StatusBadRequest {
					t.Errorf("%s: %d %s", name, code, raw)
				}
			}
			if code, raw := api(t, "POST", ts.base+"/api/v1/orders", map[string]any{"items": []any{map[string]any{"productId": a.ProductID, "quantity": 1}}}, nil, nil); code != http.StatusBadRequest {
				t.Errorf("no Idempotency-Key: %d %s", code, raw)
			}
			// The long way, for the record: a cart of two lines.
			writes = ts.svc.store.db.Writes()
			cart := ts.cart(t, a.ProductID, 1, b.ProductID, 1)
			if code, _, raw, _ := ts.checkout(t, cart, "cart-1"); code != http.StatusCreated {
				t.Fatalf("checkout: %d %s", code, raw)
			}
			if n := ts.svc.store.db.Writes() - writes; n != 5 {
				t.Fatalf("a two-line cart took %d write transactions; the docs say 5", n)
			}
			// A key is one purchase, whichever way it was made.
			if code, _, raw, _ := buy("cart-1", a.ProductID, 1, b.ProductID, 1); code != http.StatusConflict {
				t.Fatalf("a cart's key reused for a purchase in one request: %d %s", code, raw)
			}
			if code, _, raw, _ := ts.checkout(t, ts.cart(t, a.ProductID, 1), "buy-1"); code != http.StatusConflict || !strings.Contains(raw, "without a cart") {
				t.Fatalf("a purchase's key reused for a cart: %d %s", code, raw)
			}
		})
	}
}
