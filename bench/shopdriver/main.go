// Command shopdriver drives the shop's whole purchase path in a closed
// loop for bench/shop.sh: each of -c clients buys one to three products
// with a fresh Idempotency-Key, again and again for -d — by default in one
// request (-mode buy: POST /orders, two write transactions), or the long
// way (-mode cart: create a cart, add each line, check out). It prints one line of figures and, with -verify, checks
// the books afterwards: every 201 is one paid order, one charge at the
// payment service, and stock went down by exactly the units sold.
//
//	shopdriver -shop http://127.0.0.1:18293 -downstream http://127.0.0.1:18294 -c 32 -d 10s -seed-products 200
//
// Output (one line, space-separated): checkouts/s, checkout p50 and p99 in
// ms, purchase (cart + items + checkout, or the one request) p50 and p99
// in ms, non-201 checkouts, and the checkouts and units of the round.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	shop := flag.String("shop", "http://127.0.0.1:18293", "shop base URL")
	down := flag.String("downstream", "", "downstream simulator base URL (for -verify)")
	clients := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "how long to run")
	seedProducts := flag.Int("seed-products", 0, "create this many products with ample stock and write their IDs to -products, then exit")
	productsFile := flag.String("products", "products.txt", "file of product IDs, one per line")
	runID := flag.String("run", "r", "prefix of this round's idempotency keys (unique per round)")
	verify := flag.Bool("verify", false, "check the books instead of running load: orders, charges and stock agree")
	sold := flag.Int64("sold", 0, "with -verify: checkouts answered 201 over all rounds")
	units := flag.Int64("units", 0, "with -verify: units in those checkouts")
	mode := flag.String("mode", "buy", "buy (one request: POST /api/v1/orders) or cart (cart, items, checkout)")
	token := flag.String("admin-token", os.Getenv("SCALELAB_ADMIN_TOKEN"), "admin token of the shop and the simulator ($SCALELAB_ADMIN_TOKEN)")
	flag.Parse()

	c := &client{http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}, Timeout: 30 * time.Second}, base: *shop, token: *token}
	var err error
	switch {
	case *seedProducts > 0:
		err = seed(c, *seedProducts, *productsFile)
	case *verify:
		err = check(c, *down, *productsFile, *sold, *units)
	default:
		err = run(c, *clients, *dur, *productsFile, *runID, *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shopdriver:", err)
		os.Exit(1)
	}
}

// initialStock is each seeded product's stock: ample for any bench run,
// so that checkouts measure the path, not "out of stock".
const initialStock = 1_000_000_000

type client struct {
	http  *http.Client
	base  string
	token string // admin token: catalog writes and the simulator's /stats need it
}

// do sends JSON and decodes a JSON answer; it returns the status.
func (c *client) do(method, path string, hdr map[string]string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		data, _ := json.Marshal(in)
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, nil
}

func seed(c *client, n int, file string) error {
	var ids []string
	for i := range n {
		var p struct {
			ProductID string `json:"productId"`
		}
		code, err := c.do("POST", "/api/v1/products", nil, map[string]any{
			"name": fmt.Sprintf("Bench product %d", i), "category": "bench", "price_cents": 100 + i, "stock": initialStock}, &p)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("create product: %d %v", code, err)
		}
		ids = append(ids, p.ProductID)
	}
	return os.WriteFile(file, []byte(strings.Join(ids, "\n")+"\n"), 0o644)
}

func readProducts(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(data)), nil
}

type result struct {
	checkout, purchase []time.Duration
	failed             int
	units              int64
}

func run(c *client, clients int, dur time.Duration, file, runID, mode string) error {
	if mode != "buy" && mode != "cart" {
		return fmt.Errorf("-mode %q: want buy or cart", mode)
	}
	products, err := readProducts(file)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(dur)
	results := make([]result, clients)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	begin := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			r := &results[w]
			for n := 0; time.Now().Before(deadline); n++ {
				buyer := purchase
				if mode == "buy" {
					buyer = buyNow
				}
				if err := buyer(c, rng, products, fmt.Sprintf("%s-%d-%d", runID, w, n), r); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if firstErr != nil {
		return firstErr
	}
	var all result
	for _, r := range results {
		all.checkout = append(all.checkout, r.checkout...)
		all.purchase = append(all.purchase, r.purchase...)
		all.failed += r.failed
		all.units += r.units
	}
	fmt.Printf("%.1f %.2f %.2f %.2f %.2f %d %d %d\n",
		float64(len(all.checkout))/elapsed.Seconds(),
		ms(pct(all.checkout, 50)), ms(pct(all.checkout, 99)),
		ms(pct(all.purchase, 50)), ms(pct(all.purchase, 99)),
		all.failed, len(all.checkout), all.units)
	return nil
}

// purchase is one customer: a cart, 1–3 distinct products of 1–2 units,
// a checkout. Setup failures abort the run (they are not what is measured).
func purchase(c *client, rng *rand.Rand, products []string, key string, r *result) error {
	start := time.Now()
	var cart struct {
		CartID string `json:"cartId"`
	}
	if code, err := c.do("POST", "/api/v1/carts", nil, nil, &cart); err != nil || code != http.StatusCreated {
		return fmt.Errorf("create cart: %d %v", code, err)
	}
	lines := 1 + rng.IntN(3)
	var units int64
	for _, i := range rng.Perm(len(products))[:lines] {
		q := 1 + rng.IntN(2)
		if code, err := c.do("POST", "/api/v1/carts/"+cart.CartID+"/items", nil,
			map[string]any{"productId": products[i], "quantity": q}, nil); err != nil || code != http.StatusOK {
			return fmt.Errorf("add item: %d %v", code, err)
		}
		units += int64(q)
	}
	checkoutStart := time.Now()
	code, err := c.do("POST", "/api/v1/carts/"+cart.CartID+"/checkout", map[string]string{"Idempotency-Key": key}, nil, nil)
	if err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	r.record(code, start, checkoutStart, units)
	return nil
}

// record counts one answered checkout: a 201's durations (the checkout
// request from checkoutStart, the whole purchase from start) and units,
// anything else as failed.
func (r *result) record(code int, start, checkoutStart time.Time, units int64) {
	if code != http.StatusCreated {
		r.failed++
		return
	}
	end := time.Now()
	r.checkout = append(r.checkout, end.Sub(checkoutStart))
	r.purchase = append(r.purchase, end.Sub(start))
	r.units += units
}

// buyNow is one customer buying in one request: 1–3 distinct products of
// 1–2 units each.
func buyNow(c *client, rng *rand.Rand, products []string, key string, r *result) error {
	var lines []map[string]any
	var units int64
	for _, i := range rng.Perm(len(products))[:1+rng.IntN(3)] {
		q := 1 + rng.IntN(2)
		lines = append(lines, map[string]any{"productId": products[i], "quantity": q})
		units += int64(q)
	}
	start := time.Now()
	code, err := c.do("POST", "/api/v1/orders", map[string]string{"Idempotency-Key": key}, map[string]any{"items": lines}, nil)
	if err != nil {
		return fmt.Errorf("buy: %w", err)
	}
	r.record(code, start, start, units) // the purchase is its checkout
	return nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p/100))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// check compares the shop's books with the payment service's and the
// stock: it fails loudly on any difference.
func check(c *client, down, file string, sold, units int64) error {
	products, err := readProducts(file)
	if err != nil {
		return err
	}
	var left int64
	for _, id := range products {
		var p struct {
			Stock int64 `json:"stock"`
		}
		if code, err := c.do("GET", "/api/v1/products/"+id, nil, nil, &p); err != nil || code != http.StatusOK {
			return fmt.Errorf("get product: %d %v", code, err)
		}
		left += p.Stock
	}
	var st struct {
		Charges         int64 `json:"charges"`
		RepeatedCharges int64 `json:"repeatedCharges"`
		Reservations    int64 `json:"reservations"`
	}
	dc := &client{http: c.http, base: down, token: c.token}
	if code, err := dc.do("GET", "/stats", nil, nil, &st); err != nil || code != http.StatusOK {
		return fmt.Errorf("downstream stats: %d %v", code, err)
	}
	taken := int64(len(products))*initialStock - left
	fmt.Printf("checkouts 201: %d, charges at the payment service: %d (repeated %d), reservations %d; units sold %d, stock taken %d\n",
		sold, st.Charges, st.RepeatedCharges, st.Reservations, units, taken)
	if st.Charges != sold || taken != units {
		return fmt.Errorf("the books do not agree")
	}
	return nil
}
