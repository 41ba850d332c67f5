package shop

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// TestFlakyDownstreamNeverChargesTwice: a third of downstream requests fail,
// half of those after doing the work (a lost answer). Clients retry with
// their key until they get an answer; every order ends paid, charged exactly
// once, for its total.
func TestFlakyDownstreamNeverChargesTwice(t *testing.T) {
	for _, es := range []struct {
		name string
		e    func(t *testing.T) host.Engines
	}{{"SQLite", func(*testing.T) host.Engines { return host.Engines{} }},
		{"PostgreSQL", func(t *testing.T) host.Engines { return host.Engines{DB: testsvc.Postgres(t)} }}} {
		t.Run(es.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Payment.BreakerFailures, cfg.Inventory.BreakerFailures = 0, 0 // this test is about retries
			ts := startShop(t, es.e(t), cfg)
			for _, s := range downstream.Services {
				if err := ts.down.SetFaults(s, downstream.Faults{FailRate: 0.35}); err != nil {
					t.Fatal(err)
				}
			}
			a := ts.product(t, "Flaky widget", "tools", 1234, 1000)
			b := ts.product(t, "Flaky gadget", "tools", 99, 1000)
			const clients = 40
			var wg sync.WaitGroup
			var mu sync.Mutex
			orders := map[string]int64{} // order ID → total
			attempts := 0
			for i := range clients {
				cart := ts.cart(t, a.ProductID, 1+i%3, b.ProductID, 2)
				wg.Add(1)
				go func() {
					defer wg.Done()
					k := key(i)
					for try := range 30 {
						code, o, raw, _ := ts.checkout(t, cart, k)
						mu.Lock()
						attempts++
						mu.Unlock()
						switch {
						case code < 300:
							mu.Lock()
							orders[o.OrderID] = o.TotalCents
							mu.Unlock()
							return
						case code >= 500 && code != 500:
							time.Sleep(time.Duration(try) * 5 * time.Millisecond)
						default:
							t.Errorf("cart %s: %d %s", cart, code, raw)
							return
						}
					}
					t.Errorf("cart %s: no answer after 30 tries", cart)
				}()
			}
			wg.Wait()
			if len(orders) != clients {
				t.Fatalf("%d orders paid, want %d", len(orders), clients)
			}
			var sum int64
			for id, total := range orders {
				if n := ts.down.ChargesFor(id); n != 1 {
					t.Errorf("order %s charged %d times", id, n)
				}
				sum += total
			}
			st := ts.down.Stats()
			if st.Charges != clients || st.ChargedCents != sum {
				t.Fatalf("downstream: %d charges for %d cents, want %d for %d", st.Charges, st.ChargedCents, clients, sum)
			}
			if st.FailedRequests == 0 || st.RepeatedCharges == 0 {
				t.Fatalf("the faults did not bite: %+v", st)
			}
			t.Logf("%d checkout requests, downstream %+v", attempts, st)
		})
	}
}

// TestPaymentStallFailsFastAndRecovers: the payment service stalls. A
// checkout answers 504 within its deadline, then the breaker opens and
// checkouts get 503 + Retry-After at once; the catalog and carts keep
// working meanwhile. When payment heals and the breaker closes, a retry
// with the same key completes the order, charged once.
func TestPaymentStallFailsFastAndRecovers(t *testing.T) {
	cfg := testConfig()
	cfg.Payment.Timeout = 150 * time.Millisecond
	cfg.Payment.Retries = 1
	cfg.Payment.BreakerFailures, cfg.Payment.BreakerWindow = 3, 5
	cfg.Payment.BreakerDelay = 500 * time.Millisecond
	ts := startShop(t, host.Engines{}, cfg)
	p := ts.product(t, "Stalled item", "misc", 500, 100)
	if err := ts.down.SetFaults("payment", downstream.Faults{Stalled: true}); err != nil {
		t.Fatal(err)
	}

	first := ts.cart(t, p.ProductID, 1)
	start := time.Now()
	code, _, raw, _ := ts.checkout(t, first, "stall-1")
	if took := time.Since(start); code != http.StatusGatewayTimeout || took > 2*time.Second {
		t.Fatalf("stalled checkout: %d after %v: %s", code, took, raw)
	}
	if !strings.Contains(raw, "pending") {
		t.Fatalf("a 504 should say the order is pending: %s", raw)
	}
	// More stalled checkouts trip the breaker: 503 with Retry-After, fast.
	var saw503 bool
	for i := range 6 {
		c := ts.cart(t, p.ProductID, 1)
		start := time.Now()
		code, _, raw, _ := ts.checkout(t, c, "stall-x-"+strconv.Itoa(i))
		took := time.Since(start)
		if code == http.StatusServiceUnavailable {
			// The breaker may open during this checkout's retry; the
			// next one is refused at once.
			c := ts.cart(t, p.ProductID, 1)
			start := time.Now()
			code, _, raw, h := ts.checkout(t, c, "stall-open")
			if took := time.Since(start); code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || took > 100*time.Millisecond {
				t.Fatalf("open breaker: %d, Retry-After %q after %v: %s", code, h.Get("Retry-After"), took, raw)
			}
			saw503 = true
			break
		}
		if code != http.StatusGatewayTimeout {
			t.Fatalf("stalled checkout %d: %d %s (after %v)", i, code, raw, took)
		}
	}
	if !saw503 {
		t.Fatal("the payment breaker never opened")
	}
	// The rest of the shop does not notice.
	for range 5 {
		start := time.Now()
		ts.getProduct(t, p.ProductID)
		ts.cart(t, p.ProductID, 1)
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Fatalf("catalog and carts slowed to %v during the stall", took)
		}
	}
	// Heal; after the breaker's delay a retry with the same key pays, once.
	if err := ts.down.SetFaults("payment", downstream.Faults{}); err != nil {
		t.Fatal(err)
	}
	var o orderJSON
	testsvc.WaitUntil(t, "the stalled checkout to complete on retry", 5*time.Second, func() bool {
		code, o, _, _ = ts.checkout(t, first, "stall-1")
		return code == http.StatusCreated // a replay answers as the first success would
	})
	if o.State != "paid" || ts.down.ChargesFor(o.OrderID) != 1 {
		t.Fatalf("after recovery: %+v, %d charges", o, ts.down.ChargesFor(o.OrderID))
	}
}

// TestReconcilerSettlesPendingOrders: orders left pending are settled by
// asking the payment service — paid if it charged (the answer was lost),
// otherwise voided there and failed here, with the stock returned. A late
// retry of the failed checkout cannot charge.
func TestReconcilerSettlesPendingOrders(t *testing.T) {
	for _, es := range engineSets {
		t.Run(es.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Payment.Timeout, cfg.Inventory.Timeout = 100*time.Millisecond, 100*time.Millisecond
			cfg.Payment.Retries, cfg.Inventory.Retries = 0, 0
			cfg.PendingTimeout = 50 * time.Millisecond
			var ahead atomic.Int64 // the shop's clock, ahead of the real one
			cfg.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
			ts := startShop(t, es.make(t), cfg)
			p := ts.product(t, "Reconciled lamp", "home", 700, 10)

			// Order A: the payment stalls; meanwhile the charge is made
			// by the same key (as if its answer had been lost).
			if err := ts.down.SetFaults("payment", downstream.Faults{Stalled: true}); err != nil {
				t.Fatal(err)
			}
			cartA := ts.cart(t, p.ProductID, 2)
			code, _, raw, _ := ts.checkout(t, cartA, "rec-a")
			if code != http.StatusGatewayTimeout {
				t.Fatalf("stalled checkout A: %d %s", code, raw)
			}
			// Order B: the same, and it never charges.
			cartB := ts.cart(t, p.ProductID, 3)
			if code, _, raw, _ := ts.checkout(t, cartB, "rec-b"); code != http.StatusGatewayTimeout {
				t.Fatalf("stalled checkout B: %d %s", code, raw)
			}
			if got := ts.getProduct(t, p.ProductID); got.Stock != 5 {
				t.Fatalf("pending orders hold stock: %d, want 5", got.Stock)
			}
			orderA, err := ts.svc.store.orderByKey(context.Background(), "rec-a")
			if err != nil {
				t.Fatal(err)
			}
			// The stalled calls were abandoned (timed out), so lifting the
			// stall does not let them charge late.
			testsvc.WaitUntil(t, "both stalled charges to be abandoned", 2*time.Second, func() bool { return ts.down.Stats().AbandonedInStall == 2 })
			if err := ts.down.SetFaults("payment", downstream.Faults{}); err != nil {
				t.Fatal(err)
			}
			client := newDownstreamClient(ts.svc.down.base, nil, false, cfg.Inventory, cfg.Payment, nil)
			if _, err := client.Charge(context.Background(), paymentKey(orderA.ID), idString(orderA.ID), orderA.TotalCents); err != nil {
				t.Fatal(err)
			}

			ahead.Store(int64(cfg.PendingTimeout + time.Millisecond)) // both are now stale: the clock moved, nobody slept
			n, err := ts.svc.Reconcile(context.Background())
			if err != nil || n != 2 {
				t.Fatalf("Reconcile = %d, %v; want 2 settled", n, err)
			}
			var a, b orderJSON
			api(t, "GET", ts.base+"/api/v1/orders/"+idString(orderA.ID), nil, nil, &a)
			if a.State != "paid" || a.ChargeID == "" {
				t.Fatalf("order A = %+v, want paid", a)
			}
			code, b, raw, _ = ts.checkout(t, cartB, "rec-b")
			if code != http.StatusConflict || !strings.Contains(raw, "failed") {
				t.Fatalf("retry of the failed order B: %d %s", code, raw)
			}
			api(t, "GET", ts.base+"/api/v1/orders/"+b.OrderID, nil, nil, &b)
			if got := ts.getProduct(t, p.ProductID); got.Stock != 8 {
				t.Fatalf("stock after reconciling = %d, want 8 (B's 3 returned)", got.Stock)
			}
			if st := ts.down.Stats(); st.Charges != 1 || st.Voids != 1 || st.Releases != 1 {
				t.Fatalf("downstream %+v: want 1 charge (A), 1 void and 1 release (B)", st)
			}
			// A second pass finds nothing to do.
			if n, err := ts.svc.Reconcile(context.Background()); n != 0 || err != nil {
				t.Fatalf("second Reconcile = %d, %v", n, err)
			}
		})
	}
}

// TestNaiveClientWaitsOutTheStall shows what the protection buys: without
// it a checkout during a payment stall does not end until the stall does.
func TestNaiveClientWaitsOutTheStall(t *testing.T) {
	cfg := testConfig()
	cfg.Protect = false
	ts := startShop(t, host.Engines{}, cfg)
	p := ts.product(t, "Naive item", "misc", 100, 5)
	cart := ts.cart(t, p.ProductID, 1)
	if err := ts.down.SetFaults("payment", downstream.Faults{Stalled: true}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { code, _, _, _ := ts.checkout(t, cart, "naive-1"); done <- code }()
	select {
	case code := <-done:
		t.Fatalf("naive checkout answered %d during the stall", code)
	case <-time.After(700 * time.Millisecond):
	}
	testsvc.WaitUntil(t, "the stall to be seen", time.Second, func() bool { return ts.down.Stats().StalledRequests > 0 })
	if err := ts.down.SetFaults("payment", downstream.Faults{}); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != http.StatusCreated {
		t.Fatalf("naive checkout after the stall: %d", code)
	}
}

// The reconciler against the in-process downstream services, as `up` runs
// the shop: asking for a payment's status is a GET without a body, and
// the in-process call once handed it to the handler as nil — a panic that
// ended the whole process 30 s after any stalled checkout.
func TestReconcilerWithInProcessDownstream(t *testing.T) {
	cfg := testConfig()
	cfg.Payment.Timeout, cfg.Payment.Retries = 100*time.Millisecond, 0
	cfg.PendingTimeout = 50 * time.Millisecond
	var ahead atomic.Int64
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	ts := &testShop{}
	ts.base = hosttest.Start(t, host.Engines{AdminToken: testAdminToken}, func(ctx context.Context, d *host.Deps) (host.System, error) {
		svc, err := New(ctx, d, cfg)
		ts.svc = svc
		return svc, err
	})
	ts.down = ts.svc.Simulator()
	if ts.down == nil {
		t.Fatal("no in-process simulator without --downstream")
	}
	t.Cleanup(func() { _ = ts.down.SetFaults("payment", downstream.Faults{}) })
	p := ts.product(t, "In-process lamp", "home", 700, 10)
	if err := ts.down.SetFaults("payment", downstream.Faults{Stalled: true}); err != nil {
		t.Fatal(err)
	}
	if code, _, raw, _ := ts.checkout(t, ts.cart(t, p.ProductID, 1), "inproc-a"); code != http.StatusGatewayTimeout {
		t.Fatalf("stalled checkout: %d %s", code, raw)
	}
	testsvc.WaitUntil(t, "the stalled charge to be abandoned", 2*time.Second, func() bool { return ts.down.Stats().AbandonedInStall == 1 })
	if err := ts.down.SetFaults("payment", downstream.Faults{}); err != nil {
		t.Fatal(err)
	}
	ahead.Store(int64(cfg.PendingTimeout + time.Millisecond))
	if n, err := ts.svc.Reconcile(context.Background()); err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want the pending order settled", n, err)
	}
	if got := ts.getProduct(t, p.ProductID); got.Stock != 10 {
		t.Fatalf("stock %d after the failed order was settled, want 10", got.Stock)
	}
}
