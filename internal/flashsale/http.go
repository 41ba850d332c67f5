package flashsale

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Handler implements host.System: every route of the flash sale.
func (s *System) Handler() http.Handler {
	rt := httpx.NewRoutes()
	rt.HandleFunc("GET /api/v1/processor", "this process's processor: invocations, cold starts, the bill", s.handleProcessor)
	if s.role == "worker" || s.role == "functions" {
		rt.Index("flashsale", description, map[string]any{"role": s.role})
		return rt.Mux
	}
	rt.Handle("POST /api/v1/sales", `{"item","stock","starts_at","per_user_limit","price_cents"} (admin)`, s.admin.RequireFunc(s.handleCreateSale))
	rt.HandleFunc("GET /api/v1/sales", "the newest sales", s.handleSales)
	rt.HandleFunc("GET /api/v1/sales/{id}", "stock left, orders accepted, settled, released", s.handleSale)
	rt.Handle("GET /api/v1/sales/{id}/reconcile", "the sale's invariants, checked now (admin)", s.admin.RequireFunc(s.handleReconcile))
	rt.HandleFunc("POST /api/v1/sales/{id}/orders", `{"userId"}, Idempotency-Key header`, s.handlePlace)
	rt.HandleFunc("GET /api/v1/orders/{id}", "", s.handleOrder)
	rt.HandleFunc("GET /api/v1/orders/{id}/events", "SSE: the order's state, then its settlement", s.handleOrderEvents)
	rt.Index("flashsale", description, map[string]any{"mode": s.mode})
	return rt.Mux
}

func (s *System) handleCreateSale(w http.ResponseWriter, r *http.Request) {
	var req SaleRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	sl, err := s.CreateSale(r.Context(), req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, sl)
}

func (s *System) handleSales(w http.ResponseWriter, r *http.Request) {
	sales, err := s.store.sales(r.Context(), "", 20)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if sales == nil {
		sales = []*Sale{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"sales": sales})
}

// SaleView is GET /api/v1/sales/{id}.
type SaleView struct {
	*Sale
	Mode          string `json:"mode"`
	Left          int    `json:"stock_left"`
	Accepted      int    `json:"orders_accepted"` // every order that got a unit
	Settled       int    `json:"orders_settled"`  // paid
	Failed        int    `json:"orders_failed"`   // released (payment failed, or not paid in time)
	InFlight      int    `json:"orders_in_flight"`
	Notifications int    `json:"notifications_sent,omitempty"`
	Analytics     int    `json:"analytics_orders_seen,omitempty"`
}

func (s *System) handleSale(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "sale")
	if !ok {
		return
	}
	ctx := r.Context()
	sl, err := s.store.sale(ctx, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c, err := s.store.counts(ctx, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	v := SaleView{Sale: sl, Mode: s.mode, Left: sl.stockLeft, Accepted: c.Reserved + c.Paid + c.Released, Settled: c.Paid, Failed: c.Released, InFlight: c.Reserved}
	if s.mode == ModeAsync {
		if v.Left, _, err = s.gate.Units(ctx, id); err != nil {
			writeError(w, r, apperr.E(apperr.Unavailable, "%v", err))
			return
		}
		v.Notifications, _ = s.store.notifications(ctx, id)
		v.Analytics = s.analytics.count(id)
	}
	httpx.WriteJSON(w, http.StatusOK, v)
}

func (s *System) handleReconcile(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "sale")
	if !ok {
		return
	}
	rec, err := s.reconcile(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, rec)
}

func (s *System) handlePlace(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "sale")
	if !ok {
		return
	}
	var req OrderRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := s.Place(r.Context(), id, req.UserID, r.Header.Get("Idempotency-Key"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	o := p.Order
	if p.Replay && o.UserID != req.UserID {
		writeError(w, r, apperr.E(apperr.Conflict, "this Idempotency-Key was used by another user"))
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/orders/%d", o.ID))
	status := http.StatusAccepted
	switch {
	case o.State == StatePaid:
		status = http.StatusCreated
	case o.State == StateReleased:
		// Sync: the payment failed and the unit went back. (A replay of an
		// async order that was released later shows it as it is now.)
		if s.mode == ModeSync && !p.Replay {
			writeError(w, r, apperr.E(apperr.Unavailable, "the payment failed; the unit was released (order %d)", o.ID))
			return
		}
		status = http.StatusOK
	case p.Replay:
		status = http.StatusOK
	}
	httpx.WriteJSON(w, status, o)
}

func (s *System) handleOrder(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "order")
	if !ok {
		return
	}
	o, err := s.store.order(r.Context(), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, o)
}

// handleOrderEvents streams the order's state now and, when it is still
// reserved, its settlement (told by the settled topic, or seen by a read
// every two seconds should that message be missed), then ends.
func (s *System) handleOrderEvents(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "order")
	if !ok {
		return
	}
	ctx := r.Context()
	ch, done := s.settled.wait(id)
	defer done()
	o, err := s.store.order(ctx, id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	send := func(o *Order) {
		fmt.Fprintf(w, "event: %s\ndata: {\"id\":\"%d\",\"state\":%q,\"reason\":%q}\n\n", o.State, o.ID, o.State, o.Reason)
		_ = rc.Flush()
	}
	send(o)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	limit := time.NewTimer(2 * time.Minute)
	defer limit.Stop()
	for o.State == StateReserved {
		select {
		case <-ctx.Done():
			return
		case <-limit.C:
			return
		case <-ch:
		case <-t.C:
		}
		if o, err = s.store.order(ctx, id); err != nil {
			return
		}
		if o.State != StateReserved {
			send(o)
		}
	}
}

func (s *System) handleProcessor(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"role": s.role, "mode": s.mode}
	if s.functions != nil {
		out["functions"] = s.functions.Stats()
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// writeError answers err; a failure that is not one of the service's
// answers is an engine that did not answer (the database, the gate, the
// payment service), a 503 to try again, not a 500.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		err = apperr.Retry(apperr.Unavailable, time.Second, "a dependency did not answer (%s); try again", dependencyOf(err))
	}
	httpx.WriteError(w, r, err)
}

// dependencyOf names the engine behind err without its details.
func dependencyOf(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "redis"):
		return "the gate"
	case strings.Contains(msg, "payment"):
		return "the payment service"
	default:
		return "the database"
	}
}
