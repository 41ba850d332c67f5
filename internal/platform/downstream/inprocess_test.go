package downstream

import (
	"net/http"
	"strings"
	"testing"
)

// A client's GET has no body; the handlers read bodies as a server gives
// them. In process, the call must behave as over the network: an answer,
// not a nil-pointer panic that ends the whole process (seen in `up`, where
// the reconciler asks for a payment's status).
func TestInProcessGivesHandlersAServerRequest(t *testing.T) {
	client := &http.Client{Transport: InProcess{Handler: New(1).Handler(nil)}}
	for _, c := range []struct{ method, path string }{{"GET", "/payments/unknown-key"}, {"POST", "/payments/unknown-key/void"}, {"DELETE", "/inventory/reservations/7"}} {
		req, _ := http.NewRequest(c.method, "http://downstream.in-process"+c.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
}

func TestInProcessTurnsAHandlersPanicIntoAnError(t *testing.T) {
	client := &http.Client{Transport: InProcess{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })}}
	_, err := client.Get("http://downstream.in-process/x")
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("err %v, want the panic as an error", err)
	}
}
