package shop

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// Handler implements host.System: every route of the shop, behind the
// MaxInFlight bound.
func (s *Service) Handler() http.Handler {
	rt := httpx.NewRoutes()
	rt.Handle("POST /api/v1/products", "admin", s.admin.RequireFunc(s.handleCreateProduct))
	rt.HandleFunc("GET /api/v1/products", "?q=&category=&cursor=", s.handleSearch)
	rt.HandleFunc("GET /api/v1/products/{id}", "", s.handleProduct)
	rt.Handle("PUT /api/v1/products/{id}", "admin", s.admin.RequireFunc(s.handleUpdateProduct))
	rt.HandleFunc("POST /api/v1/carts", "", s.handleCreateCart)
	rt.HandleFunc("GET /api/v1/carts/{id}", "", s.handleCart)
	rt.HandleFunc("POST /api/v1/carts/{id}/items", "", s.handleAddItem)
	rt.HandleFunc("POST /api/v1/carts/{id}/checkout", "Idempotency-Key header", s.handleCheckout)
	rt.HandleFunc("POST /api/v1/orders", `{"items": [{"productId", "quantity"}]} + Idempotency-Key header: a purchase in one request`, s.handleBuy)
	rt.HandleFunc("GET /api/v1/orders/{id}", "", s.handleOrder)
	rt.Index("shop", description, nil)
	return s.limit(rt.Mux)
}

// productJSON is a product as the API shows it.
type productJSON struct {
	ProductID  string    `json:"productId"`
	Name       string    `json:"name"`
	Category   string    `json:"category"`
	PriceCents int64     `json:"price_cents"`
	Stock      int64     `json:"stock"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

func toProductJSON(p *Product) productJSON {
	return productJSON{ProductID: idString(p.ID), Name: p.Name, Category: p.Category, PriceCents: p.PriceCents, Stock: p.Stock,
		CreatedAt: time.UnixMilli(p.CreatedAt).UTC(), UpdatedAt: time.UnixMilli(p.UpdatedAt).UTC()}
}

// flexID is an ID given as a JSON string or number.
type flexID int64

func (f *flexID) UnmarshalJSON(b []byte) error {
	var s string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else {
		s = string(b)
	}
	id, err := httpx.ParseID(s)
	if err != nil {
		return err
	}
	*f = flexID(id)
	return nil
}

func (s *Service) handleCreateProduct(w http.ResponseWriter, r *http.Request) {
	var in NewProduct
	if err := httpx.DecodeJSON(r, &in); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	p, err := s.CreateProduct(r.Context(), in)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", s.baseURL+"/api/v1/products/"+idString(p.ID))
	httpx.WriteJSON(w, http.StatusCreated, toProductJSON(p))
}

func (s *Service) handleProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "product")
	if !ok {
		return
	}
	p, err := s.Product(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toProductJSON(p))
}

func (s *Service) handleUpdateProduct(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "product")
	if !ok {
		return
	}
	var in ProductUpdate
	if err := httpx.DecodeJSON(r, &in); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	p, err := s.UpdateProduct(r.Context(), id, in)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toProductJSON(p))
}

const (
	defaultPage = 20
	maxPage     = 100
	maxQueryLen = 200
)

func (s *Service) handleSearch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Search{Category: q.Get("category"), Limit: defaultPage}
	if f.Category != "" {
		if err := checkCategory(f.Category); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	if text := q.Get("q"); text != "" {
		if len(text) > maxQueryLen {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "q: at most %d bytes", maxQueryLen))
			return
		}
		f.Words = nameTerms(text, maxQueryTerms+1)
		if len(f.Words) == 0 {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "q: needs a word of at least %d letters or digits", minTermLen))
			return
		}
		if len(f.Words) > maxQueryTerms {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "q: at most %d words", maxQueryTerms))
			return
		}
	}
	var err error
	if v := q.Get("cursor"); v != "" {
		if f.Before, err = httpx.ParseID(v); err != nil {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "cursor: use the nextCursor of the previous page"))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit < 1 || f.Limit > maxPage {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "limit: 1–%d", maxPage))
			return
		}
	}
	ps, err := s.Search(r.Context(), f)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := struct {
		Products   []productJSON `json:"products"`
		NextCursor string        `json:"nextCursor,omitempty"`
	}{Products: make([]productJSON, len(ps))}
	for i, p := range ps {
		out.Products[i] = toProductJSON(p)
	}
	if len(ps) == f.Limit {
		out.NextCursor = idString(ps[len(ps)-1].ID)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleCreateCart(w http.ResponseWriter, r *http.Request) {
	id, err := s.CreateCart(r.Context())
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", s.baseURL+"/api/v1/carts/"+idString(id))
	httpx.WriteJSON(w, http.StatusCreated, map[string]string{"cartId": idString(id)})
}

type cartItemJSON struct {
	ProductID  string `json:"productId"`
	Name       string `json:"name"`
	Quantity   int    `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

func (s *Service) writeCart(w http.ResponseWriter, r *http.Request, id int64) {
	c, err := s.Cart(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	out := struct {
		CartID     string         `json:"cartId"`
		State      string         `json:"state"`
		Items      []cartItemJSON `json:"items"`
		TotalCents int64          `json:"totalCents"`
	}{CartID: idString(c.ID), State: c.State, Items: make([]cartItemJSON, len(c.Items))}
	for i, it := range c.Items {
		out.Items[i] = cartItemJSON{ProductID: idString(it.ProductID), Name: it.Name, Quantity: it.Quantity, PriceCents: it.PriceCents}
		out.TotalCents += int64(it.Quantity) * it.PriceCents
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleCart(w http.ResponseWriter, r *http.Request) {
	if id, ok := httpx.PathID(w, r, "cart"); ok {
		s.writeCart(w, r, id)
	}
}

func (s *Service) handleAddItem(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "cart")
	if !ok {
		return
	}
	var in struct {
		ProductID *flexID `json:"productId"`
		Quantity  *int    `json:"quantity"`
	}
	if err := httpx.DecodeJSON(r, &in); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if in.ProductID == nil || in.Quantity == nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, `want {"productId", "quantity"}`))
		return
	}
	if err := s.AddItem(r.Context(), id, int64(*in.ProductID), *in.Quantity); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	s.writeCart(w, r, id)
}

// checkKey validates an Idempotency-Key: 1–100 visible ASCII characters.
func checkKey(key string) error {
	if key == "" {
		return apperr.E(apperr.Invalid, "the Idempotency-Key header is required: a checkout is retried safely only under one key")
	}
	if len(key) > maxKeyLen {
		return apperr.E(apperr.Invalid, "Idempotency-Key: at most %d characters", maxKeyLen)
	}
	for _, c := range []byte(key) {
		if c < 0x21 || c > 0x7e {
			return apperr.E(apperr.Invalid, "Idempotency-Key: visible ASCII characters only")
		}
	}
	return nil
}

type orderJSON struct {
	OrderID    string         `json:"orderId"`
	CartID     string         `json:"cartId,omitempty"` // none for a purchase in one request
	State      string         `json:"state"`
	TotalCents int64          `json:"totalCents"`
	ChargeID   string         `json:"chargeId,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Items      []cartItemJSON `json:"items"`
}

func toOrderJSON(o *Order) orderJSON {
	out := orderJSON{OrderID: idString(o.ID), State: o.State, TotalCents: o.TotalCents,
		ChargeID: o.ChargeID, Reason: o.Reason, Items: make([]cartItemJSON, len(o.Items))}
	if o.CartID > 0 {
		out.CartID = idString(o.CartID)
	}
	for i, it := range o.Items {
		out.Items[i] = cartItemJSON{ProductID: idString(it.ProductID), Name: it.Name, Quantity: it.Quantity, PriceCents: it.PriceCents}
	}
	return out
}

func (s *Service) handleCheckout(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "cart")
	if !ok {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if err := checkKey(key); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	o, created, err := s.Checkout(r.Context(), id, key)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	s.writeOrderCreated(w, o, created)
}

// writeOrderCreated answers a checkout or a purchase. A replay answers
// what the first request did — 201 with the order and its Location — as
// Stripe and the IETF Idempotency-Key draft do; Idempotent-Replayed tells
// the two apart.
func (s *Service) writeOrderCreated(w http.ResponseWriter, o *Order, created bool) {
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", s.baseURL+"/api/v1/orders/"+idString(o.ID))
	httpx.WriteJSON(w, http.StatusCreated, toOrderJSON(o))
}

// handleBuy is a purchase in one request: the lines, placed and paid as a
// checkout is, under the client's Idempotency-Key.
func (s *Service) handleBuy(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	if err := checkKey(key); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var in struct {
		Items []struct {
			ProductID *flexID `json:"productId"`
			Quantity  *int    `json:"quantity"`
		} `json:"items"`
	}
	if err := httpx.DecodeJSON(r, &in); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if len(in.Items) > maxCartLines {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "items: at most %d lines", maxCartLines))
		return
	}
	lines := make([]CartItem, len(in.Items))
	for i, it := range in.Items {
		if it.ProductID == nil || it.Quantity == nil {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, `items: want [{"productId", "quantity"}, …]`))
			return
		}
		lines[i] = CartItem{ProductID: int64(*it.ProductID), Quantity: *it.Quantity}
	}
	o, created, err := s.Buy(r.Context(), lines, key)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	s.writeOrderCreated(w, o, created)
}

func (s *Service) handleOrder(w http.ResponseWriter, r *http.Request) {
	id, ok := httpx.PathID(w, r, "order")
	if !ok {
		return
	}
	o, err := s.Order(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, toOrderJSON(o))
}
