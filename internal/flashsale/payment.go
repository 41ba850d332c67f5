package flashsale

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// payments is the client of the payment service (platform/downstream's
// simulator, over HTTP or in process). Every charge carries the order's
// idempotency key, so a retry — by this process, a redelivered worker, or
// the sweeper — charges at most once.
type payments struct {
	base    string
	client  *http.Client
	timeout time.Duration
}

func paymentKey(orderID int64) string { return "flashsale-" + strconv.FormatInt(orderID, 10) }

// chargeOutcome is what a charge attempt established.
type chargeOutcome int

const (
	charged   chargeOutcome = iota + 1 // the payment exists
	refused                            // it does not and will not (the key is void)
	uncertain                          // no answer, or a failure that may have charged
)

type paymentAnswer struct {
	ChargeID string `json:"chargeId"`
	Voided   bool   `json:"voided"`
}

func (p *payments) call(ctx context.Context, method, path, key string, body any) (int, paymentAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
	if err != nil {
		return 0, paymentAnswer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, paymentAnswer{}, err
	}
	defer resp.Body.Close()
	var a paymentAnswer
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&a)
	return resp.StatusCode, a, nil
}

// charge takes the order's payment.
func (p *payments) charge(ctx context.Context, orderID, cents int64) (chargeOutcome, string) {
	code, a, err := p.call(ctx, http.MethodPost, "/payments", paymentKey(orderID), map[string]any{"orderId": strconv.FormatInt(orderID, 10), "amountCents": cents})
	switch {
	case err != nil:
		return uncertain, ""
	case (code == http.StatusOK || code == http.StatusCreated) && a.ChargeID != "":
		return charged, a.ChargeID
	case code == http.StatusConflict: // voided: the sweeper gave up on it first
		return refused, ""
	default:
		return uncertain, ""
	}
}

// settleUnknown turns an uncertain charge into a known one: the charge
// if the payment service has it, otherwise a void of the key, after which
// no late retry can charge it.
func (p *payments) settleUnknown(ctx context.Context, orderID int64) (chargeOutcome, string, error) {
	key := paymentKey(orderID)
	code, a, err := p.call(ctx, http.MethodGet, "/payments/"+key, "", nil)
	if err != nil {
		return uncertain, "", fmt.Errorf("payment status: %w", err)
	}
	if code == http.StatusOK && a.ChargeID != "" {
		return charged, a.ChargeID, nil
	}
	if code == http.StatusOK && a.Voided {
		return refused, "", nil
	}
	if code != http.StatusNotFound {
		return uncertain, "", fmt.Errorf("payment status: HTTP %d", code)
	}
	code, a, err = p.call(ctx, http.MethodPost, "/payments/"+key+"/void", "", nil)
	switch {
	case err != nil:
		return uncertain, "", fmt.Errorf("payment void: %w", err)
	case code == http.StatusOK:
		return refused, "", nil
	case code == http.StatusConflict && a.ChargeID != "": // it charged meanwhile
		return charged, a.ChargeID, nil
	default:
		return uncertain, "", fmt.Errorf("payment void: HTTP %d", code)
	}
}

// chargeCount is whether the payment service holds a charge for the order
// (the reconciler's check that orders paid = charges).
func (p *payments) hasCharge(ctx context.Context, orderID int64) (bool, error) {
	code, a, err := p.call(ctx, http.MethodGet, "/payments/"+paymentKey(orderID), "", nil)
	if err != nil {
		return false, err
	}
	if code != http.StatusOK && code != http.StatusNotFound {
		return false, fmt.Errorf("payment status: HTTP %d", code)
	}
	return code == http.StatusOK && a.ChargeID != "", nil
}

// chargedAmong is which of ids the payment service holds a charge for,
// asked 1,000 at a time.
func (p *payments) chargedAmong(ctx context.Context, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	for start := 0; start < len(ids); start += 1000 {
		chunk := ids[start:min(start+1000, len(ids))]
		keys := make([]string, len(chunk))
		byKey := make(map[string]int64, len(chunk))
		for i, id := range chunk {
			keys[i] = paymentKey(id)
			byKey[keys[i]] = id
		}
		raw, _ := json.Marshal(map[string]any{"keys": keys})
		cctx, cancel := context.WithTimeout(ctx, 10*p.timeout)
		req, err := http.NewRequestWithContext(cctx, http.MethodPost, p.base+"/payments/lookup", bytes.NewReader(raw))
		if err != nil {
			cancel()
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("payment lookup: %w", err)
		}
		var a struct {
			Charges map[string]string `json:"charges"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&a)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusOK || err != nil {
			return nil, fmt.Errorf("payment lookup: HTTP %d %v", resp.StatusCode, err)
		}
		for k := range a.Charges {
			out[byKey[k]] = true
		}
	}
	return out, nil
}
