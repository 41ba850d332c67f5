package dynamo

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/scalelab/scalelab/internal/dynamo/client"
	"github.com/scalelab/scalelab/internal/dynamo/vclock"
	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// rawPut writes through the HTTP API with a context header as given.
func rawPut(t *testing.T, base, key, value, causal string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/kv/"+key, strings.NewReader(value))
	if causal != "" {
		req.Header.Set(ContextHeader, causal)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The observed attack: a context with every actor's counter at 2^64−1
// made the key drop all later writes while answering 204. It is refused
// with 400, and the writes after it win.
func TestForgedContextIsRefusedAndLaterWritesWin(t *testing.T) {
	c := newCluster(t, 31, testConfig(), "n1", "n2", "n3")
	base := serve(t, c.node("n1")).URL
	cl := client.New(base)
	ctx := context.Background()
	if _, err := cl.Put(ctx, "k", []byte("v1"), "", 3); err != nil {
		t.Fatal(err)
	}
	res, err := cl.Get(ctx, "k", 3)
	if err != nil {
		t.Fatal(err)
	}
	real, err := vclock.Parse(res.Context)
	if err != nil || len(real) == 0 {
		t.Fatalf("context %q: %v", res.Context, err)
	}
	maxed := append(vclock.Clock(nil), real...)
	for i := range maxed {
		maxed[i].Counter = 1<<64 - 1
	}
	// This node's own actor, and another node's (which n1 must ask).
	n2actor := c.node("n2").store.Actor("n2")
	for name, forged := range map[string]vclock.Clock{
		"every counter maxed":    maxed,
		"own actor ahead":        {{Node: c.node("n1").store.Actor("n1"), Counter: 2}},
		"another node's, ahead":  {{Node: n2actor, Counter: 1 << 40}},
		"another node's, extras": {{Node: n2actor, Extra: []uint64{1 << 50}}},
	} {
		st, body := rawPut(t, base, "k", "evil", forged.String())
		if st != http.StatusBadRequest || !strings.Contains(body, `"error"`) || !strings.Contains(body, ContextHeader) {
			t.Errorf("%s: %d %s, want 400 naming the context", name, st, body)
		}
	}
	// Nothing of the forged writes landed; the next write with the real
	// context replaces v1, and so does the one after it.
	next, err := cl.Put(ctx, "k", []byte("v2"), res.Context, 3)
	if err != nil {
		t.Fatalf("a write after the forged ones: %v", err)
	}
	if _, err := cl.Put(ctx, "k", []byte("v3"), next, 3); err != nil {
		t.Fatal(err)
	}
	after, err := cl.Get(ctx, "k", 3)
	if err != nil || len(after.Values) != 1 || string(after.Values[0]) != "v3" {
		t.Fatalf("after the attack: %+v %v, want v3 alone", after, err)
	}
	// Blind writes through every node still land as siblings.
	for _, n := range []string{"n1", "n2", "n3"} {
		if _, err := c.node(n).Put(ctx, []byte("k"), WriteRequest{Value: []byte("blind-" + n), W: 3}); err != nil {
			t.Fatalf("blind write via %s: %v", n, err)
		}
	}
	if vs := get(t, c.node("n2"), "k", 3); len(vs) != 4 {
		t.Fatalf("v3 and three blind writes: %v", valuesOf(vs))
	}
	if c.node("n1").metrics.contextsRefused.Load() < 4 {
		t.Fatalf("refusals counted: %d", c.node("n1").metrics.contextsRefused.Load())
	}
}

// A claim nobody can vouch for (an actor that is no member) is clamped to
// what the replica knows: the write lands as a sibling, replacing nothing.
func TestUnvouchedContextIsClamped(t *testing.T) {
	c := newCluster(t, 32, testConfig(), "n1", "n2", "n3")
	n1 := c.node("n1")
	ctx := context.Background()
	put(t, n1, "k", "v1", nil, 3)
	ghost := vclock.Clock{{Node: "ghost.0123", Counter: 1 << 60}}
	real := vclock.Context(get(t, n1, "k", 3))
	put(t, n1, "k", "v2", vclock.Merge(real, ghost), 3)
	vs := get(t, c.node("n3"), "k", 3)
	if got := valuesOf(vs); len(got) != 1 || got[0] != "v2" {
		t.Fatalf("a real context plus a ghost: %v, want v2 (the real part replaced v1)", got)
	}
	for _, e := range vclock.Context(vs) {
		if e.Node == "ghost.0123" {
			t.Fatalf("the ghost's claim was stored: %v", e)
		}
	}
	if _, err := n1.Put(ctx, []byte("k2"), WriteRequest{Context: ghost, Value: []byte("x"), W: 3}); err != nil {
		t.Fatalf("ghost-only context: %v", err)
	}
	if n1.metrics.contextsClamped.Load() < 2 {
		t.Fatalf("clamps counted: %d", n1.metrics.contextsClamped.Load())
	}
}

// Blind writes cannot pile up without bound: past MaxSiblings versions or
// MaxKeyBytes bytes a write is refused with 400; resolving frees the key.
func TestSiblingAndByteLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxValue, cfg.MaxSiblings, cfg.MaxKeyBytes = 1000, 3, 2500
	c := newCluster(t, 33, cfg, "n1", "n2", "n3")
	n1 := c.node("n1")
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		put(t, n1, "s", strings.Repeat("x", 10+i), nil, 3)
	}
	_, err := n1.Put(ctx, []byte("s"), WriteRequest{Value: []byte("fourth"), W: 3})
	if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(apperr.MessageOf(err), "siblings") {
		t.Fatalf("a fourth sibling: %v, want invalid (siblings)", err)
	}
	put(t, n1, "s", "resolved", vclock.Context(get(t, n1, "s", 3)), 3)
	if got := valuesOf(get(t, n1, "s", 3)); len(got) != 1 || got[0] != "resolved" {
		t.Fatalf("after resolving: %v", got)
	}
	put(t, n1, "b", strings.Repeat("a", 1000), nil, 3)
	put(t, n1, "b", strings.Repeat("b", 1000), nil, 3)
	_, err = n1.Put(ctx, []byte("b"), WriteRequest{Value: []byte(strings.Repeat("c", 1000)), W: 3})
	if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(apperr.MessageOf(err), "bytes") {
		t.Fatalf("2,000 bytes held plus 1,000: %v, want invalid (bytes)", err)
	}
	// Over HTTP the refusal is a 400 with a JSON body.
	st, body := rawPut(t, serve(t, n1).URL, "b", strings.Repeat("d", 1000), "")
	if st != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
		t.Fatalf("over HTTP: %d %s", st, body)
	}
}
