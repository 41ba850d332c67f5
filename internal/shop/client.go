package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/resilience"
)

// errVoided is the payment service refusing a charge whose key the
// reconciler voided: the order was given up.
var errVoided = errors.New("shop: the payment was voided")

// errAlreadyCharged is the payment service refusing to void a key that has
// charged.
var errAlreadyCharged = errors.New("shop: the payment has charged")

// downstreamClient calls inventory and payment over HTTP. Every call is
// idempotent by construction — reservations by order ID, charges by
// idempotency key, voids and releases by key — which is what makes
// retrying them safe. With protect false it is the naive client of the
// cascade experiment: no timeouts, no retries, no breaker, no bulkhead,
// and calls that outlive their request.
type downstreamClient struct {
	base      string
	http      *http.Client
	inventory *resilience.Dependency // nil when unprotected
	payment   *resilience.Dependency
}

func newDownstreamClient(base string, rt http.RoundTripper, protect bool, inventory, payment resilience.Config, m *resilience.Metrics) *downstreamClient {
	c := &downstreamClient{base: strings.TrimRight(base, "/")}
	if rt == nil {
		rt = &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second}
	}
	c.http = &http.Client{Transport: rt}
	if protect {
		c.inventory = resilience.New("inventory", inventory, m)
		c.payment = resilience.New("payment", payment, m)
	}
	return c
}

// call runs fn under dep's protection, or bare (and detached from the
// request's cancellation, as a naive client is) without it.
func call(ctx context.Context, dep *resilience.Dependency, fn func(ctx context.Context) error) error {
	if dep == nil {
		return fn(context.WithoutCancel(ctx))
	}
	return dep.Do(ctx, true, fn)
}

// do sends one request and decodes a 2xx JSON answer into out. A 4xx is
// the service's definite answer (resilience.Permanent: not retried, not a
// failure of the service); a 5xx or a transport error is a failure.
func (c *downstreamClient) do(ctx context.Context, method, path, key string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	switch {
	case resp.StatusCode >= 500:
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	case resp.StatusCode >= 400:
		return resp.StatusCode, resilience.Permanent(fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: bad answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Reserve holds the order's items at the warehouse (idempotent by order).
func (c *downstreamClient) Reserve(ctx context.Context, orderID string, items []downstream.LineItem) error {
	err := call(ctx, c.inventory, func(ctx context.Context) error {
		_, err := c.do(ctx, http.MethodPost, "/inventory/reservations", "", downstream.ReserveRequest{OrderID: orderID, Items: items}, nil)
		return err
	})
	return describe("inventory", err)
}

// Release gives a reservation back (idempotent).
func (c *downstreamClient) Release(ctx context.Context, orderID string) error {
	err := call(ctx, c.inventory, func(ctx context.Context) error {
		_, err := c.do(ctx, http.MethodDelete, "/inventory/reservations/"+url.PathEscape(orderID), "", nil, nil)
		return err
	})
	return describe("inventory", err)
}

// Charge takes the payment once for key, however often it is called.
func (c *downstreamClient) Charge(ctx context.Context, key, orderID string, amount int64) (string, error) {
	var p downstream.Payment
	err := call(ctx, c.payment, func(ctx context.Context) error {
		status, err := c.do(ctx, http.MethodPost, "/payments", key, downstream.ChargeRequest{OrderID: orderID, AmountCents: amount}, &p)
		if status == http.StatusConflict {
			return resilience.Permanent(errVoided)
		}
		return err
	})
	return p.ChargeID, describe("payment", err)
}

// PaymentStatus reports whether key has charged (found with a charge ID).
func (c *downstreamClient) PaymentStatus(ctx context.Context, key string) (chargeID string, found bool, err error) {
	var p downstream.Payment
	err = call(ctx, c.payment, func(ctx context.Context) error {
		status, err := c.do(ctx, http.MethodGet, "/payments/"+url.PathEscape(key), "", nil, &p)
		if status == http.StatusNotFound {
			return nil
		}
		found = err == nil
		return err
	})
	return p.ChargeID, found && p.ChargeID != "", describe("payment", err)
}

// Void makes key unusable if it has not charged; errAlreadyCharged if it has.
func (c *downstreamClient) Void(ctx context.Context, key string) error {
	err := call(ctx, c.payment, func(ctx context.Context) error {
		status, err := c.do(ctx, http.MethodPost, "/payments/"+url.PathEscape(key)+"/void", "", nil, nil)
		if status == http.StatusConflict {
			return resilience.Permanent(errAlreadyCharged)
		}
		return err
	})
	return describe("payment", err)
}

// describe turns a raw failure into a client-ready one: protection
// outcomes (503/504 from resilience) and the sentinels pass unchanged.
func describe(service string, err error) error {
	if err == nil || errors.Is(err, errVoided) || errors.Is(err, errAlreadyCharged) {
		return err
	}
	if apperr.CodeOf(err) != apperr.Internal {
		return err
	}
	return fmt.Errorf("%w: %w", apperr.Retry(apperr.Unavailable, time.Second, "%s is failing", service), err)
}
