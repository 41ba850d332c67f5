package flashsale

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// acked is what the buyers were told: order IDs by status.
type acked struct {
	mu     sync.Mutex
	orders map[string]int // order ID → status (201 or 202)
	codes  map[int]int    // status → count (0: no answer)
}

// spikeTolerant sends buyers orders from 64 senders, each with an
// Idempotency-Key; a request that gets no answer (the server was killed)
// counts as status 0. after, when set, is called once when n answers have
// come.
func spikeTolerant(base string, saleID int64, from, buyers int, n int, after func()) *acked {
	return spikeWith(base, saleID, from, buyers, n, after, true)
}

// spikeWith is spikeTolerant, with or without idempotency keys.
func spikeWith(base string, saleID int64, from, buyers int, n int, after func(), keyed bool) *acked {
	a := &acked{orders: map[string]int{}, codes: map[int]int{}}
	client := &http.Client{Timeout: 10 * time.Second}
	var answered atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body, _ := json.Marshal(map[string]string{"userId": fmt.Sprintf("b%d", i)})
				req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/sales/%d/orders", base, saleID), bytes.NewReader(body))
				if keyed {
					req.Header.Set("Idempotency-Key", fmt.Sprintf("key-%d", i))
				}
				code, id := 0, ""
				if resp, err := client.Do(req); err == nil {
					var o struct {
						ID string `json:"id"`
					}
					_ = json.NewDecoder(resp.Body).Decode(&o)
					resp.Body.Close()
					code, id = resp.StatusCode, o.ID
				}
				a.mu.Lock()
				a.codes[code]++
				if code == 201 || code == 202 {
					a.orders[id] = code
				}
				a.mu.Unlock()
				if answered.Add(1) == int64(n) && after != nil {
					once.Do(after)
				}
			}
		}()
	}
	for i := from; i < from+buyers; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return a
}

// settledOnce checks every acknowledged order: it exists and is paid or
// released, and the sale's books balance with nothing reserved.
func settledOnce(t *testing.T, base string, saleID int64, acks ...*acked) *Reconciliation {
	t.Helper()
	ts := &testSale{base: base}
	rec := ts.reconciled(t, saleID, true)
	n := 0
	for _, a := range acks {
		for id := range a.orders {
			var o Order
			if code, raw := call(t, "GET", base+"/api/v1/orders/"+id, nil, nil, &o); code != 200 || (o.State != StatePaid && o.State != StateReleased) {
				t.Fatalf("acknowledged order %s: %d %s", id, code, raw)
			}
			n++
		}
	}
	if rec.Sold+rec.Left != rec.Stock || rec.Sold > rec.Stock {
		t.Fatalf("books %+v", rec)
	}
	t.Logf("%d acknowledged orders settled; books %+v", n, rec)
	return rec
}

// kill -9 the API mid-spike (async, SQLite and the embedded broker in its
// data directory, the payment service a process of its own), start it
// again on the same data: every order it acknowledged is paid (and any it
// recorded but could not answer) — the
// messages the dead process held come again after the ack wait, well
// inside the sweeper's deadline — nothing is oversold, and the books
// balance (the gate is rebuilt from SQL).
func TestAPIKilledMidSpike(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	pay := proctest.Start(t, proctest.FreeAddr(t), "shop", "downstream", "--latency", "5ms", "--admin-token", testAdminToken)
	dir := t.TempDir()
	api := proctest.Start(t, proctest.FreeAddr(t), "flashsale", "serve", "--data", dir, "--admin-token", testAdminToken,
		"--payment", pay.URL(), "--deadline", "15s", "--broker-ack-wait", "2s")
	ts := &testSale{base: api.URL()}
	sl := ts.newSale(t, 150, 1)
	first := spikeTolerant(api.URL(), sl.ID, 0, 1200, 300, api.Kill)
	if first.codes[0] == 0 || len(first.orders) == 0 {
		t.Fatalf("the kill did not land mid-spike: %v", first.codes)
	}
	api.Restart()
	second := spikeTolerant(api.URL(), sl.ID, 1200, 600, 0, nil)
	rec := settledOnce(t, api.URL(), sl.ID, first, second)
	if acked := len(first.orders) + len(second.orders); rec.Sold < acked || rec.Sold+rec.Left != rec.Stock {
		t.Fatalf("sold %d of %d with %d acknowledged before the kill and %d after: %+v", rec.Sold, rec.Stock, len(first.orders), len(second.orders), rec)
	}
}

// kill -9 a worker mid-order (async on PostgreSQL, Redis and NATS, two
// worker processes, a slow payment service): its unacked messages go to
// the other worker, the orders it was paying are settled once, and the
// books balance.
func TestWorkerKilledMidOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	ns, natsURL := testsvc.Name("fsw"), testsvc.NATS(t)
	testsvc.CleanupBroker(t, natsURL, ns)
	engines := []string{"--db", testsvc.Postgres(t), "--cache", testsvc.Redis(t), "--broker", natsURL, "--namespace", ns,
		"--admin-token", testAdminToken, "--broker-ack-wait", "2s"}
	pay := proctest.Start(t, proctest.FreeAddr(t), "shop", "downstream", "--latency", "100ms", "--admin-token", testAdminToken)
	common := append(append([]string(nil), engines...), "--payment", pay.URL(), "--data", t.TempDir())
	api := proctest.Start(t, proctest.FreeAddr(t), append([]string{"flashsale", "serve", "--processor", "none", "--deadline", "20s"}, common...)...)
	w1 := proctest.Start(t, proctest.FreeAddr(t), append([]string{"flashsale", "worker", "--workers", "8"}, append(common[:len(common):len(common)], "--data", t.TempDir())...)...)
	w2 := proctest.Start(t, proctest.FreeAddr(t), append([]string{"flashsale", "worker", "--workers", "8"}, append(common[:len(common):len(common)], "--data", t.TempDir())...)...)
	_ = w2
	ts := &testSale{base: api.URL()}
	sl := ts.newSale(t, 120, 1)
	a := spikeTolerant(api.URL(), sl.ID, 0, 600, 0, nil)
	if len(a.orders) != 120 {
		t.Fatalf("acknowledged %d, want 120: %v", len(a.orders), a.codes)
	}
	// 120 orders at 100 ms each over 16 workers: about a second of work.
	// Kill one worker while it is paying.
	testsvc.WaitUntil(t, "some orders paid", 10*time.Second, func() bool {
		var v SaleView
		call(t, "GET", fmt.Sprintf("%s/api/v1/sales/%d", api.URL(), sl.ID), nil, nil, &v)
		return v.Settled > 10
	})
	w1.Kill()
	rec := settledOnce(t, api.URL(), sl.ID, a)
	if rec.Sold != 120 || rec.Charges != 120 {
		t.Fatalf("after a worker's death: %+v", rec)
	}
}

// The payment service stalls mid-spike: orders stay reserved (their
// outcome unknown), nothing is released while a charge may still land;
// once it answers again, the workers and the sweeper settle every order
// once and the books balance.
func TestPaymentStallThenRecovery(t *testing.T) {
	sim := downstream.New(3)
	cfg := DefaultConfig()
	cfg.simulator, cfg.PaymentTimeout, cfg.Deadline, cfg.SweepEvery = sim, 200*time.Millisecond, time.Second, 200*time.Millisecond
	ts := startSale(t, host.Engines{}, cfg)
	sl := ts.newSale(t, 50, 1)
	if err := sim.SetFaults("payment", downstream.Faults{Stalled: true}); err != nil {
		t.Fatal(err)
	}
	got := ts.spike(t, sl.ID, 300, 300)
	if got[202] != 50 || got[409] != 250 {
		t.Fatalf("answers during the stall: %v", got)
	}
	time.Sleep(1500 * time.Millisecond) // past the deadline, while the payment service is stalled
	var rec Reconciliation
	call(t, "GET", fmt.Sprintf("%s/api/v1/sales/%d/reconcile", ts.base, sl.ID), nil, admin, &rec)
	if rec.Released != 0 || rec.Sold+rec.Reserved != 50 {
		t.Fatalf("during the stall an order was released or lost: %+v", rec)
	}
	if err := sim.SetFaults("payment", downstream.Faults{}); err != nil {
		t.Fatal(err)
	}
	if rec := ts.reconciled(t, sl.ID, true); rec.Sold+rec.Released != 50 || rec.Charges != rec.Sold {
		t.Fatalf("after the stall: %+v", rec)
	}
}

// A sync and an async deployment on one database: each sweeps and
// settles only its own mode's sales. (The async sweeper once released the
// sync sale's stale orders without giving their units back to its row:
// bench/flashsale.sh's books found 8 units missing.)
func TestSyncAndAsyncShareADatabase(t *testing.T) {
	db := testsvc.Postgres(t)
	syncSim := downstream.New(5)
	syncCfg, asyncCfg := DefaultConfig(), DefaultConfig()
	syncCfg.Mode, syncCfg.simulator, syncCfg.PaymentTimeout, syncCfg.Deadline, syncCfg.SweepEvery = ModeSync, syncSim, 100*time.Millisecond, time.Second, 100*time.Millisecond
	asyncCfg.Deadline, asyncCfg.SweepEvery = time.Second, 100*time.Millisecond
	syncSale := startSale(t, host.Engines{DB: db}, syncCfg)
	asyncSale := startSale(t, host.Engines{DB: db}, asyncCfg)
	sl := syncSale.newSale(t, 40, 1)
	other := asyncSale.newSale(t, 40, 1)
	if code, raw := call(t, "POST", fmt.Sprintf("%s/api/v1/sales/%d/orders", asyncSale.base, sl.ID), map[string]any{"userId": "x"}, nil, nil); code != 409 {
		t.Fatalf("a sync sale ordered through the async process: %d %s", code, raw)
	}
	if err := syncSim.SetFaults("payment", downstream.Faults{Stalled: true}); err != nil {
		t.Fatal(err)
	}
	got := syncSale.spike(t, sl.ID, 100, 100) // payments stall: the orders stay reserved, answered 504
	if got[504] != 40 || got[409] != 60 {
		t.Fatalf("answers with the payment stalled: %v", got)
	}
	asyncSale.spike(t, other.ID, 100, 100)
	time.Sleep(1500 * time.Millisecond) // both sweepers run past the deadline
	if err := syncSim.SetFaults("payment", downstream.Faults{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ts *testSale
		id int64
	}{{syncSale, sl.ID}, {asyncSale, other.ID}} {
		if rec := c.ts.reconciled(t, c.id, true); rec.Sold+rec.Left != 40 {
			t.Fatalf("books %+v", rec)
		}
	}
}

// The broker restarts and the database drops every connection, each
// while buyers keep coming (async on PostgreSQL behind a cuttable proxy,
// Redis, NATS restarted on its port and store): admission goes on without
// the broker (the outbox holds the events) and refuses with 503 without
// the database (the holds wait for the sweeper); afterwards every
// acknowledged order settles once and the books balance.
func TestBrokerAndDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts a broker")
	}
	pgURL, err := url.Parse(testsvc.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	pg := proctest.StartProxy(t, pgURL.Host)
	pgURL.Host = pg.Addr()
	port, storeDir := freePort(t), t.TempDir()
	nats := proctest.StartNATS(t, port, storeDir)
	t.Cleanup(func() { nats.Shutdown() }) // after the system's own cleanup (LIFO)
	cfg := DefaultConfig()
	cfg.Deadline, cfg.SweepEvery = 3*time.Second, 200*time.Millisecond
	ts := startSale(t, host.Engines{DB: pgURL.String(), Cache: testsvc.Redis(t), Broker: fmt.Sprintf("nats://127.0.0.1:%d", port), BrokerAckWait: 2 * time.Second}, cfg)
	sl := ts.newSale(t, 300, 1)

	first := spikeTolerant(ts.base, sl.ID, 0, 100, 0, nil)
	nats.Shutdown()
	during := spikeTolerant(ts.base, sl.ID, 200, 100, 0, nil) // no broker: admitted into the outbox
	if len(during.orders) == 0 {
		t.Fatalf("no admission while the broker was down: %v", during.codes)
	}
	nats = proctest.StartNATS(t, port, storeDir)

	pg.Cut()
	// No keys: nothing to look up first, so the gate admits and the
	// record fails — the holds are left to the sweeper.
	cut := spikeWith(ts.base, sl.ID, 300, 50, 0, nil, false)
	if cut.codes[503] != 50 || len(cut.orders) != 0 {
		t.Fatalf("answers with the database cut: %v", cut.codes)
	}
	pg.Restore()
	// Past the deadline the sweeper finds the refused orders' holds with
	// no order, tombstones them and gives the units back.
	testsvc.WaitUntil(t, "the cut's holds given back", 20*time.Second, func() bool {
		var rec Reconciliation
		call(t, "GET", fmt.Sprintf("%s/api/v1/sales/%d/reconcile", ts.base, sl.ID), nil, admin, &rec)
		return rec.GateOnly == 0 && rec.Reserved == 0 && rec.Left > 0
	})
	after := spikeTolerant(ts.base, sl.ID, 400, 400, 0, nil)
	rec := settledOnce(t, ts.base, sl.ID, first, during, cut, after)
	if rec.Sold != 300 || rec.Released < 50 {
		t.Fatalf("sold %d of 300 with buyers to spare, %d released (the cut's 50 tombstoned): %+v", rec.Sold, rec.Released, rec)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
