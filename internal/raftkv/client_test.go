package raftkv

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/raftkv/client"
)

func TestGoClient(t *testing.T) {
	c := newCluster(t, 13, 3)
	c.leader()
	var urls []string
	var servers []*httptest.Server
	for _, id := range c.ids {
		api := NewAPI(c.nodes[id], 600*time.Millisecond, 1<<20)
		s := httptest.NewServer(httpx.JSONErrors(httpx.Instrument("raftkv", httpx.NewMetrics(prometheus.NewRegistry()), 2<<20, c.nodes[id].log, api.Handler())))
		t.Cleanup(s.Close)
		servers = append(servers, s)
		urls = append(urls, s.URL)
	}
	cl := client.New(urls...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	rev, err := cl.Put(ctx, "k", []byte{0, 1, 2}, nil)
	if err != nil || rev != 1 {
		t.Fatalf("put: %d %v", rev, err)
	}
	zero := int64(0)
	var conflict *client.ConflictError
	if _, err := cl.Put(ctx, "k", []byte("x"), &zero); !errors.As(err, &conflict) || conflict.Current != 1 {
		t.Fatalf("create-if-absent on an existing key: %v", err)
	}
	one := int64(1)
	if rev, err := cl.Put(ctx, "k", []byte("y"), &one); err != nil || rev != 2 {
		t.Fatalf("CAS: %d %v", rev, err)
	}
	// A node goes away (its HTTP server and its Raft node): the client
	// moves on to the others.
	servers[0].Close()
	c.crash(c.ids[0])
	if rev, err := cl.Put(ctx, "k", []byte("z"), nil); err != nil || rev != 3 {
		t.Fatalf("put with a node down: %d %v", rev, err)
	}
	if v, rev, err := cl.Get(ctx, "k", false); err != nil || string(v) != "z" || rev != 3 {
		t.Fatalf("get: %q %d %v", v, rev, err)
	}
	if _, err := cl.Delete(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.Get(ctx, "k", false); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}
