package downstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Simulator simulates the two services checkout depends on, on one
// address: inventory reservation (/inventory/…) and payment (/payments/…).
// Both keep their state in memory and are idempotent by key, as the real
// services they stand for would be. Faults are injected per service:
// latency, a failure rate, and a stall (requests hang until the stall is
// lifted or the caller gives up).
//
// A failure is ambiguous on purpose, like a lost response on a real
// network: half of the failed requests fail before doing anything, the
// other half do their work and then answer 500. A client that retries a
// charge without its idempotency key would charge twice; one that sends the
// key cannot.
type Simulator struct {
	mu           sync.Mutex
	reservations map[string]reservation // by order ID
	payments     map[string]*Payment    // by idempotency key
	faults       map[string]*faultState // "inventory", "payment"
	stats        Stats
	rng          *rand.Rand
}

type reservation struct {
	Items    []LineItem `json:"items"`
	Released bool       `json:"released"`
}

type Payment struct {
	ChargeID    string `json:"chargeId,omitempty"`
	OrderID     string `json:"orderId"`
	AmountCents int64  `json:"amountCents"`
	Voided      bool   `json:"voided"`
}

// Faults is what a service does wrong. Stalled requests wait until the
// stall is lifted (then answer normally) or their caller goes away.
type Faults struct {
	Latency  time.Duration `json:"-"`
	FailRate float64       `json:"failRate"`
	Stalled  bool          `json:"stalled"`
}

type faultsJSON struct {
	Latency  string   `json:"latency"`
	FailRate *float64 `json:"failRate"`
	Stalled  *bool    `json:"stalled"`
}

type faultState struct {
	Faults
	unstall chan struct{} // closed when a stall is lifted
}

// Stats counts what the downstream services did.
type Stats struct {
	Reservations     int64 `json:"reservations"`
	Releases         int64 `json:"releases"`
	Charges          int64 `json:"charges"`          // distinct idempotency keys charged
	ChargedCents     int64 `json:"chargedCents"`     // sum over those charges
	RepeatedCharges  int64 `json:"repeatedCharges"`  // requests answered from an existing charge
	Voids            int64 `json:"voids"`            // keys voided before any charge
	FailedRequests   int64 `json:"failedRequests"`   // injected failures
	StalledRequests  int64 `json:"stalledRequests"`  // requests that met a stall
	AbandonedInStall int64 `json:"abandonedInStall"` // of those, the ones whose caller gave up
}

// New builds the simulator with no faults. seed fixes the
// failure draws.
func New(seed uint64) *Simulator {
	d := &Simulator{
		reservations: map[string]reservation{},
		payments:     map[string]*Payment{},
		faults:       map[string]*faultState{},
		rng:          rand.New(rand.NewPCG(seed, seed^0x5eed)),
	}
	for _, s := range Services {
		d.faults[s] = &faultState{unstall: make(chan struct{})}
	}
	return d
}

// Services are the simulated services, by the name SetFaults takes.
var Services = []string{"inventory", "payment"}

// SetFaults replaces a service's faults. Lifting a stall releases every
// request waiting in it.
func (d *Simulator) SetFaults(service string, f Faults) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fs, ok := d.faults[service]
	if !ok {
		return apperr.E(apperr.NotFound, "no service %q: want inventory or payment", service)
	}
	if f.FailRate < 0 || f.FailRate > 1 || f.Latency < 0 {
		return apperr.E(apperr.Invalid, "failRate must be in [0,1] and latency ≥ 0")
	}
	if fs.Stalled && !f.Stalled {
		close(fs.unstall)
		fs.unstall = make(chan struct{})
	}
	fs.Faults = f
	return nil
}

// Faults returns a service's current faults.
func (d *Simulator) Faults(service string) Faults {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.faults[service].Faults
}

// Stats returns the counters.
func (d *Simulator) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// ChargesFor returns how many distinct charges exist for an order (any
// key): the "never charged twice" check of the tests.
func (d *Simulator) ChargesFor(orderID string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, p := range d.payments {
		if p.OrderID == orderID && p.ChargeID != "" {
			n++
		}
	}
	return n
}

// Handler serves both services, and with admin the control API (GET
// /control, PUT /control/{service}, GET /stats) to holders of the admin
// token: whoever may stall payments may take the shop down. With a nil
// admin there is no control API (faults are set in process, SetFaults).
func (d *Simulator) Handler(admin *auth.AdminToken) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /inventory/reservations", d.faulty("inventory", d.reserve))
	mux.HandleFunc("DELETE /inventory/reservations/{orderId}", d.faulty("inventory", d.release))
	mux.HandleFunc("POST /payments", d.faulty("payment", d.charge))
	mux.HandleFunc("GET /payments/{key}", d.faulty("payment", d.paymentStatus))
	mux.HandleFunc("POST /payments/lookup", d.faulty("payment", d.lookup))
	mux.HandleFunc("POST /payments/{key}/void", d.faulty("payment", d.void))
	if admin == nil {
		return mux
	}
	mux.Handle("GET /control", admin.RequireFunc(func(w http.ResponseWriter, r *http.Request) {
		out := map[string]faultsJSON{}
		for _, s := range Services {
			f := d.Faults(s)
			out[s] = faultsJSON{Latency: f.Latency.String(), FailRate: &f.FailRate, Stalled: &f.Stalled}
		}
		httpx.WriteJSON(w, http.StatusOK, out)
	}))
	mux.Handle("PUT /control/{service}", admin.RequireFunc(d.control))
	mux.Handle("GET /stats", admin.RequireFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, d.Stats())
	}))
	return mux
}

// InProcess carries the shop's calls to a downstream in the same process
// straight to its handler: no port is bound, so nothing outside the
// process can reach it. httptest's recorder is the response writer: the
// standard library's own, complete implementation.
type InProcess struct{ Handler http.Handler }

func (t InProcess) RoundTrip(r *http.Request) (resp *http.Response, err error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	// A server-side request always has a body; a client-side GET has none.
	// Handlers written for the server (MaxBytesReader, io.ReadAll) must see
	// what a server gives them.
	in := r.WithContext(r.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	// net/http recovers a handler's panic for its connection; so does this,
	// as an error of this one call rather than the whole process's end.
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, fmt.Errorf("downstream: in-process handler for %s %s panicked: %v", r.Method, r.URL.Path, p)
		}
	}()
	rec := httptest.NewRecorder()
	t.Handler.ServeHTTP(rec, in)
	resp = rec.Result()
	resp.Request = r
	return resp, nil
}

// control changes one service's faults; absent fields keep their value.
func (d *Simulator) control(w http.ResponseWriter, r *http.Request) {
	var in faultsJSON
	if err := httpx.DecodeJSON(r, &in); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	service := r.PathValue("service")
	if _, ok := d.faults[service]; !ok {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "no service %q: want inventory or payment", service))
		return
	}
	f := d.Faults(service)
	if in.Latency != "" {
		l, err := time.ParseDuration(in.Latency)
		if err != nil {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "latency: a duration such as 20ms"))
			return
		}
		f.Latency = l
	}
	if in.FailRate != nil {
		f.FailRate = *in.FailRate
	}
	if in.Stalled != nil {
		f.Stalled = *in.Stalled
	}
	if err := d.SetFaults(service, f); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, faultsJSON{Latency: f.Latency.String(), FailRate: &f.FailRate, Stalled: &f.Stalled})
}

// faulty applies a service's faults around its handler. A handler returns
// its status and body, so that an injected "lost response" can do the
// work and then answer 500 instead.
func (d *Simulator) faulty(service string, h func(r *http.Request) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Take the whole request in before any fault: net/http notices a
		// caller that hangs up (and cancels r.Context()) only once the body
		// has been read, and a stalled request must see its caller leave.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			httpx.WriteJSON(w, http.StatusBadRequest, errBody("request body: %v", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		d.mu.Lock()
		fs := d.faults[service]
		f, unstall := fs.Faults, fs.unstall
		fail := f.FailRate > 0 && d.rng.Float64() < f.FailRate
		lost := fail && d.rng.IntN(2) == 0
		if f.Stalled {
			d.stats.StalledRequests++
		}
		d.mu.Unlock()

		if f.Stalled {
			select {
			case <-unstall:
			case <-r.Context().Done():
				d.mu.Lock()
				d.stats.AbandonedInStall++
				d.mu.Unlock()
				return
			}
		}
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if fail && !lost {
			d.countFailure()
			httpx.WriteJSON(w, http.StatusServiceUnavailable, httpx.ErrorBody{Error: service + ": injected failure (nothing done)"})
			return
		}
		status, answer := h(r)
		if fail {
			d.countFailure()
			httpx.WriteJSON(w, http.StatusInternalServerError, httpx.ErrorBody{Error: service + ": injected failure (the work was done, the answer lost)"})
			return
		}
		httpx.WriteJSON(w, status, answer)
	}
}

func (d *Simulator) countFailure() {
	d.mu.Lock()
	d.stats.FailedRequests++
	d.mu.Unlock()
}

// LineItem is one product and quantity of an order.
type LineItem struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

type ReserveRequest struct {
	OrderID string     `json:"orderId"`
	Items   []LineItem `json:"items"`
}

func errBody(format string, args ...any) httpx.ErrorBody {
	return httpx.ErrorBody{Error: fmt.Sprintf(format, args...)}
}

// reserve holds items for an order; the same order reserves once.
func (d *Simulator) reserve(r *http.Request) (int, any) {
	var in ReserveRequest
	if err := httpx.DecodeJSON(r, &in); err != nil || in.OrderID == "" || len(in.Items) == 0 {
		return http.StatusBadRequest, errBody("want {\"orderId\", \"items\": [{\"productId\", \"quantity\"}]}")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if res, ok := d.reservations[in.OrderID]; ok {
		if res.Released {
			return http.StatusConflict, errBody("reservation for order %s was released", in.OrderID)
		}
		return http.StatusOK, map[string]string{"reservationId": in.OrderID}
	}
	d.reservations[in.OrderID] = reservation{Items: in.Items}
	d.stats.Reservations++
	return http.StatusCreated, map[string]string{"reservationId": in.OrderID}
}

// release cancels a reservation; releasing twice, or one never made, is
// fine (a release must be safe to retry).
func (d *Simulator) release(r *http.Request) (int, any) {
	id := r.PathValue("orderId")
	d.mu.Lock()
	defer d.mu.Unlock()
	res, ok := d.reservations[id]
	if !ok || !res.Released {
		res.Released = true
		d.reservations[id] = res
		d.stats.Releases++
	}
	return http.StatusOK, map[string]bool{"released": true}
}

type ChargeRequest struct {
	OrderID     string `json:"orderId"`
	AmountCents int64  `json:"amountCents"`
}

// charge takes a payment once per Idempotency-Key: a repeated request
// gets the first charge back; the same key for a different amount or
// order is refused, as is a voided key.
func (d *Simulator) charge(r *http.Request) (int, any) {
	key := r.Header.Get("Idempotency-Key")
	var in ChargeRequest
	if err := httpx.DecodeJSON(r, &in); err != nil || in.OrderID == "" || in.AmountCents <= 0 {
		return http.StatusBadRequest, errBody("want {\"orderId\", \"amountCents\" > 0}")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if key == "" {
		// Without a key every request is a new charge: what a naive
		// client's retry does to its customers.
		key = "anonymous-" + strconv.FormatInt(d.stats.Charges+d.stats.RepeatedCharges+1, 10) + "-" + in.OrderID
	}
	if p, ok := d.payments[key]; ok {
		switch {
		case p.Voided:
			return http.StatusConflict, errBody("payment %s was voided", key)
		case p.OrderID != in.OrderID || p.AmountCents != in.AmountCents:
			return http.StatusUnprocessableEntity, errBody("idempotency key %s was used for another charge", key)
		}
		d.stats.RepeatedCharges++
		return http.StatusOK, p
	}
	p := &Payment{ChargeID: "ch_" + strconv.FormatInt(d.stats.Charges+1, 10), OrderID: in.OrderID, AmountCents: in.AmountCents}
	d.payments[key] = p
	d.stats.Charges++
	d.stats.ChargedCents += in.AmountCents
	return http.StatusCreated, p
}

func (d *Simulator) paymentStatus(r *http.Request) (int, any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.payments[r.PathValue("key")]
	if !ok {
		return http.StatusNotFound, errBody("no payment with key %s", r.PathValue("key"))
	}
	return http.StatusOK, p
}

// LookupRequest asks which of up to 1,000 keys charged.
type LookupRequest struct {
	Keys []string `json:"keys"`
}

// lookup answers a reconciler's bulk question: the charge ID of every
// given key that charged (a voided or unknown key is absent).
func (d *Simulator) lookup(r *http.Request) (int, any) {
	var in LookupRequest
	if err := httpx.DecodeJSON(r, &in); err != nil || len(in.Keys) > 1000 {
		return http.StatusBadRequest, errBody("want {\"keys\": [at most 1000]}")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for _, k := range in.Keys {
		if p, ok := d.payments[k]; ok && p.ChargeID != "" {
			out[k] = p.ChargeID
		}
	}
	return http.StatusOK, map[string]any{"charges": out}
}

// void makes a key unusable if it has not charged: after it, a late charge
// with the key is refused, so the shop can safely give the stock back.
func (d *Simulator) void(r *http.Request) (int, any) {
	key := r.PathValue("key")
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.payments[key]
	if ok && p.ChargeID != "" {
		return http.StatusConflict, p
	}
	if !ok {
		d.payments[key] = &Payment{Voided: true}
		d.stats.Voids++
	}
	return http.StatusOK, map[string]bool{"voided": true}
}

// Run serves the simulator on addr until ctx ends. stallAfter > 0
// stalls the stalled service that long after start, for stallFor (0:
// until stopped).
func Run(ctx context.Context, d *Simulator, srv *httpx.Server, stallService string, stallAfter, stallFor time.Duration) error {
	if stallAfter > 0 {
		service := strings.ToLower(stallService)
		if _, ok := d.faults[service]; !ok {
			return fmt.Errorf("shop downstream: --stall-service %q: want inventory or payment", stallService)
		}
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(stallAfter):
			}
			f := d.Faults(service)
			f.Stalled = true
			_ = d.SetFaults(service, f)
			if stallFor <= 0 {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(stallFor):
			}
			f = d.Faults(service)
			f.Stalled = false
			_ = d.SetFaults(service, f)
		}()
	}
	return srv.Serve(ctx)
}
