package auth

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalelab/scalelab/internal/platform/httpx"
)

func mustKey(t *testing.T, text string) *Key {
	t.Helper()
	k, err := ParseKey(text)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPeers(t *testing.T, k *Key, name string) *Peers {
	t.Helper()
	p, err := NewPeers(k, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serve runs h behind p's listener and returns its address.
func serve(t *testing.T, p *Peers, h http.Handler) string {
	t.Helper()
	srv := httpx.NewServer(httpx.ServerConfig{Addr: "127.0.0.1:0", TLS: p.ServerTLS()}, h, slog.New(slog.DiscardHandler))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.Addr()
}

func post(p *Peers, addr, body string) (int, error) { return postPath(p, addr, "/x", body) }

func postPath(p *Peers, addr, path, body string) (int, error) {
	c := &http.Client{Transport: p.Transport(&http.Transport{})}
	defer c.CloseIdleConnections()
	resp, err := c.Post(p.URL(addr, path), "text/plain", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestParseKeyRefusesShortKeys(t *testing.T) {
	for _, s := range []string{"", "   ", "short", strings.Repeat("x", MinKeyBytes-1) + "\n"} {
		if _, err := ParseKey(s); !errors.Is(err, ErrWeakKey) {
			t.Errorf("ParseKey(%q) = %v, want ErrWeakKey", s, err)
		}
	}
	if _, err := ParseKey(NewKeyText() + "\n"); err != nil {
		t.Fatalf("a generated key is refused: %v", err)
	}
	if NewKeyText() == NewKeyText() {
		t.Fatal("two generated keys are equal")
	}
}

func TestLoadKeyIgnoresSurroundingSpace(t *testing.T) {
	text := NewKeyText()
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("  "+text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(k.GossipKey()) != string(mustKey(t, text).GossipKey()) {
		t.Fatal("the same key text gave two gossip keys")
	}
	if k, err := LoadKey(""); k != nil || err != nil {
		t.Fatalf("no path: %v %v, want no key", k, err)
	}
	if _, err := LoadKey(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("a missing key file was accepted")
	}
}

func TestDerivedKeysAreIndependentAndStable(t *testing.T) {
	a, b := mustKey(t, NewKeyText()), mustKey(t, NewKeyText())
	if len(a.GossipKey()) != 32 {
		t.Fatalf("gossip key is %d bytes, want 32 (AES-256)", len(a.GossipKey()))
	}
	if string(a.GossipKey()) == string(b.GossipKey()) {
		t.Fatal("two cluster keys gave one gossip key")
	}
	if string(a.GossipKey()) == string(a.derive("peer-ca/v1", 32)) {
		t.Fatal("gossip key equals the CA seed")
	}
	ca1, _, err1 := a.authority()
	ca2, _, err2 := a.authority()
	if err1 != nil || err2 != nil || string(ca1.Raw) != string(ca2.Raw) {
		t.Fatalf("the CA is not the same certificate each time: %v %v", err1, err2)
	}
	if (*Key)(nil).GossipKey() != nil {
		t.Fatal("no key has a gossip key")
	}
}

func TestMembersWithTheKeyTalk(t *testing.T) {
	text := NewKeyText()
	server := mustPeers(t, mustKey(t, text), "n1")
	client := mustPeers(t, mustKey(t, text), "n2") // another process: its own leaf, the same CA
	addr := serve(t, server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "n2" {
			http.Error(w, "no client certificate", http.StatusTeapot)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	if st, err := post(client, addr, "hello"); err != nil || st != http.StatusNoContent {
		t.Fatalf("a member was refused: %d %v", st, err)
	}
}

func TestOutsidersAreRefusedBeforeTheHandler(t *testing.T) {
	server := mustPeers(t, mustKey(t, NewKeyText()), "n1")
	reached := make(chan struct{}, 10)
	addr := serve(t, server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- struct{}{}
	}))
	otherCluster := mustPeers(t, mustKey(t, NewKeyText()), "n9")
	if _, err := post(otherCluster, addr, "x"); err == nil {
		t.Fatal("a member of another cluster got in")
	}
	// TLS without a client certificate, trusting anything.
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := anon.Post("https://"+addr+"/x", "text/plain", strings.NewReader("x")); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %d", resp.StatusCode)
	}
	// Plain HTTP to the TLS port.
	if resp, err := http.Post("http://"+addr+"/x", "text/plain", strings.NewReader("x")); err == nil {
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP got %d", resp.StatusCode)
		}
		resp.Body.Close()
	}
	if len(reached) != 0 {
		t.Fatalf("the handler was reached %d times by outsiders", len(reached))
	}
}

func TestNoKeyMeansLoopbackOnly(t *testing.T) {
	p := mustPeers(t, nil, "n1")
	if p.Secure() || p.ServerTLS() != nil || p.ClientTLS() != nil {
		t.Fatal("no key but secure")
	}
	for addr, ok := range map[string]bool{
		"127.0.0.1:7401": true, "127.0.0.5:1": true, "[::1]:7401": true, "localhost:7401": true,
		"0.0.0.0:7401": false, "10.0.0.1:7401": false, ":7401": false, "[::]:7401": false, "example.com:1": false, "nonsense": false,
	} {
		if err := p.CheckAddr(addr); (err == nil) != ok {
			t.Errorf("CheckAddr(%s) = %v, want ok=%v", addr, err, ok)
		}
	}
	if err := mustPeers(t, mustKey(t, NewKeyText()), "n1").CheckAddr("0.0.0.0:7401"); err != nil {
		t.Errorf("with a key any address may serve peers: %v", err)
	}
	if !strings.Contains(p.StartLine(), "loopback only") || p.URL("a:1", "/p") != "http://a:1/p" {
		t.Fatalf("start line %q", p.StartLine())
	}
}

func TestGuardLimits(t *testing.T) {
	p := mustPeers(t, nil, "n1")
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	h := p.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), Limits{MaxBody: 1000, MaxConcurrent: 2}, nil)
	addr := serve(t, p, h)

	if st, err := post(p, addr, strings.Repeat("a", 1000)); err != nil || st != http.StatusNoContent {
		t.Fatalf("a body at the limit: %d %v", st, err)
	}
	if st, err := post(p, addr, strings.Repeat("a", 1001)); err != nil || st != http.StatusRequestEntityTooLarge {
		t.Fatalf("a body over the limit: %d %v, want 413", st, err)
	}
	// A chunked body (no Content-Length) is cut at the limit as it is read.
	req, _ := http.NewRequest("POST", "http://"+addr+"/x", io.MultiReader(strings.NewReader(strings.Repeat("b", 5000))))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked over the limit: %v %v", resp, err)
	}
	resp.Body.Close()

	// Two requests held inside: the third is refused at once.
	results := make(chan int, 2)
	for range 2 {
		go func() {
			st, _ := postPath(p, addr, "/block", "")
			results <- st
		}()
	}
	for range 2 {
		<-entered
	}
	c := &http.Client{}
	r3, err := c.Post("http://"+addr+"/x", "text/plain", nil)
	if err != nil || r3.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third concurrent request: %v %v, want 503", r3, err)
	}
	r3.Body.Close()
	close(release)
	for range 2 {
		if st := <-results; st != http.StatusNoContent {
			t.Fatalf("a held request ended with %d", st)
		}
	}
}

func TestGuardsShareTheirCounter(t *testing.T) {
	p := mustPeers(t, nil, "n1")
	reg := prometheus.NewRegistry()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux := http.NewServeMux()
	mux.Handle("/big", p.Guard(ok, Limits{MaxBody: 1 << 20, MaxConcurrent: 1}, reg))
	mux.Handle("/", p.Guard(ok, Limits{MaxBody: 10, MaxConcurrent: 1}, reg)) // a second guard on one registry
	addr := serve(t, p, mux)
	if st, _ := postPath(p, addr, "/big", strings.Repeat("x", 100)); st != http.StatusNoContent {
		t.Fatalf("100 bytes on the big route: %d", st)
	}
	if st, _ := postPath(p, addr, "/small", strings.Repeat("x", 100)); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("100 bytes on the small route: %d", st)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var refused float64
	for _, f := range families {
		if f.GetName() == "scalelab_peer_refused_total" {
			for _, m := range f.Metric {
				refused += m.GetCounter().GetValue()
			}
		}
	}
	if refused != 1 {
		t.Fatalf("refusals counted: %v, want 1", refused)
	}
}
