package flashsale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

const testAdminToken = "flashsale-test-admin-token-0123456789abcdef"

type testSale struct {
	base string
	sys  *System
}

func startSale(t *testing.T, e host.Engines, cfg Config) *testSale {
	t.Helper()
	ts := &testSale{}
	e.AdminToken = testAdminToken
	if e.Namespace == "" {
		e.Namespace = testsvc.Name("fs")
	}
	testsvc.CleanupBroker(t, e.Broker, e.Namespace) // each stream reserves its limit on a shared NATS
	ts.base = hosttest.Start(t, e, func(ctx context.Context, d *host.Deps) (host.System, error) {
		s, err := New(ctx, d, cfg)
		ts.sys = s
		return s, err
	})
	return ts
}

func call(t testing.TB, method, url string, body any, hdr map[string]string, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 500 && resp.StatusCode != 503 && resp.StatusCode != 504 {
		t.Errorf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	if !json.Valid(raw) && resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("%s %s: not JSON: %s", method, url, raw)
	}
	if out != nil && resp.StatusCode < 300 {
		_ = json.Unmarshal(raw, out)
	}
	return resp.StatusCode, string(raw)
}

var admin = map[string]string{"Authorization": "Bearer " + testAdminToken}

func (ts *testSale) newSale(t *testing.T, stock, perUser int) *Sale {
	t.Helper()
	var sl Sale
	if code, raw := call(t, "POST", ts.base+"/api/v1/sales", map[string]any{"item": "console", "stock": stock, "per_user_limit": perUser}, admin, &sl); code != 201 {
		t.Fatalf("create sale: %d %s", code, raw)
	}
	return &sl
}

// spike sends buyers order requests at once (users cycling over users)
// and returns how many got each status.
func (ts *testSale) spike(t *testing.T, saleID int64, buyers, users int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 128)
	for i := 0; i < buyers; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			code, _ := call(t, "POST", fmt.Sprintf("%s/api/v1/sales/%d/orders", ts.base, saleID), map[string]string{"userId": fmt.Sprintf("u%d", i%users)},
				map[string]string{"Idempotency-Key": fmt.Sprintf("k%d", i)}, nil)
			mu.Lock()
			got[code]++
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	return got
}

func (ts *testSale) reconciled(t *testing.T, saleID int64, settledToo bool) *Reconciliation {
	t.Helper()
	var rec Reconciliation
	testsvc.WaitUntil(t, "the sale's books balance", 30*time.Second, func() bool {
		rec = Reconciliation{}
		code, _ := call(t, "GET", fmt.Sprintf("%s/api/v1/sales/%d/reconcile", ts.base, saleID), nil, admin, &rec)
		return code == 200 && rec.OK && (!settledToo || rec.Reserved == 0)
	})
	return &rec
}

// The spike: 1,500 buyers (500 users, limit 2) for 100 units — exactly
// 100 sold, none oversold or left unsold, every admitted order settled
// once, and the books balance; on every engine.
func TestSpikeSellsExactlyTheStock(t *testing.T) {
	engines := []struct {
		name string
		e    func(t *testing.T) host.Engines
	}{
		{"sqlite", func(t *testing.T) host.Engines { return host.Engines{} }},
		{"postgres+redis+nats", func(t *testing.T) host.Engines {
			return host.Engines{DB: testsvc.Postgres(t), Cache: testsvc.Redis(t), Broker: testsvc.NATS(t)}
		}},
		{"mariadb", func(t *testing.T) host.Engines { return host.Engines{DB: testsvc.MySQL(t)} }},
	}
	for _, eng := range engines {
		for _, mode := range []string{ModeSync, ModeAsync} {
			t.Run(eng.name+"/"+mode, func(t *testing.T) {
				cfg := DefaultConfig()
				cfg.Mode = mode
				ts := startSale(t, eng.e(t), cfg)
				sl := ts.newSale(t, 100, 2)
				got := ts.spike(t, sl.ID, 1500, 500)
				ok := got[201] + got[202]
				if ok != 100 || got[409] != 1400 {
					t.Fatalf("answers %v: want 100 accepted and 1,400 refused", got)
				}
				rec := ts.reconciled(t, sl.ID, true)
				if rec.Sold != 100 || rec.Left != 0 || rec.Charges != 100 || rec.OverLimit != 0 {
					t.Fatalf("books %+v", rec)
				}
				if mode == ModeAsync { // each order's event reached the notification and analytics subscribers, once
					var v SaleView
					testsvc.WaitUntil(t, "100 notifications and 100 orders in analytics", 20*time.Second, func() bool {
						call(t, "GET", fmt.Sprintf("%s/api/v1/sales/%d", ts.base, sl.ID), nil, nil, &v)
						return v.Notifications >= 100 && v.Analytics >= 100
					})
					if v.Notifications != 100 || v.Analytics != 100 {
						t.Fatalf("notifications %d, analytics %d; want 100 each", v.Notifications, v.Analytics)
					}
				}
				// Replays answer as the first time, and buy nothing more.
				before := got
				again := ts.spike(t, sl.ID, 1500, 500)
				if again[409] != before[409] || again[201]+again[202]+again[200] != ok {
					t.Fatalf("replays: %v after %v", again, before)
				}
				if rec := ts.reconciled(t, sl.ID, true); rec.Sold != 100 || rec.Charges != 100 {
					t.Fatalf("after replays: %+v", rec)
				}
			})
		}
	}
}

// Bad input gets a 4xx with a JSON body.
func TestFlashSaleBadInput(t *testing.T) {
	ts := startSale(t, host.Engines{}, DefaultConfig())
	sl := ts.newSale(t, 5, 1)
	future := time.Now().Add(time.Hour)
	var later Sale
	call(t, "POST", ts.base+"/api/v1/sales", map[string]any{"item": "later", "stock": 5, "starts_at": future}, admin, &later)
	orders := fmt.Sprintf("%s/api/v1/sales/%d/orders", ts.base, sl.ID)
	for _, c := range []struct {
		name, method, url string
		body              any
		hdr               map[string]string
		want              int
	}{
		{"sale without the token", "POST", ts.base + "/api/v1/sales", map[string]any{"item": "x", "stock": 1}, nil, 401},
		{"no stock", "POST", ts.base + "/api/v1/sales", map[string]any{"item": "x", "stock": 0}, admin, 400},
		{"huge stock", "POST", ts.base + "/api/v1/sales", map[string]any{"item": "x", "stock": 1 << 40}, admin, 400},
		{"no item", "POST", ts.base + "/api/v1/sales", map[string]any{"stock": 3}, admin, 400},
		{"not JSON", "POST", ts.base + "/api/v1/sales", "{", admin, 400},
		{"no user", "POST", orders, map[string]any{}, nil, 400},
		{"user with a bar", "POST", orders, map[string]any{"userId": "a|b"}, nil, 400},
		{"key with a space", "POST", orders, map[string]any{"userId": "a"}, map[string]string{"Idempotency-Key": "a b"}, 400},
		{"no such sale", "POST", ts.base + "/api/v1/sales/123/orders", map[string]any{"userId": "a"}, nil, 404},
		{"bad sale ID", "POST", ts.base + "/api/v1/sales/abc/orders", map[string]any{"userId": "a"}, nil, 400},
		{"before the start", "POST", fmt.Sprintf("%s/api/v1/sales/%d/orders", ts.base, later.ID), map[string]any{"userId": "a"}, nil, 425},
		{"no such order", "GET", ts.base + "/api/v1/orders/99", nil, nil, 404},
		{"reconcile without the token", "GET", fmt.Sprintf("%s/api/v1/sales/%d/reconcile", ts.base, sl.ID), nil, nil, 401},
	} {
		if code, raw := call(t, c.method, c.url, c.body, c.hdr, nil); code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, code, raw, c.want)
		}
	}
	// A key reused by another user is refused.
	call(t, "POST", orders, map[string]any{"userId": "alice"}, map[string]string{"Idempotency-Key": "shared"}, nil)
	if code, raw := call(t, "POST", orders, map[string]any{"userId": "mallory"}, map[string]string{"Idempotency-Key": "shared"}, nil); code != 409 {
		t.Fatalf("another user's key: %d %s", code, raw)
	}
}

// An order's SSE stream tells its settlement.
func TestOrderEventsTellTheSettlement(t *testing.T) {
	ts := startSale(t, host.Engines{}, DefaultConfig())
	sl := ts.newSale(t, 5, 1)
	var o Order
	if code, raw := call(t, "POST", fmt.Sprintf("%s/api/v1/sales/%d/orders", ts.base, sl.ID), map[string]any{"userId": "sse"}, nil, &o); code != 202 {
		t.Fatalf("order: %d %s", code, raw)
	}
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/orders/%d/events", ts.base, o.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body) // the stream ends once the order settled
	if !bytes.Contains(raw, []byte("event: paid")) {
		t.Fatalf("stream: %s", raw)
	}
}
