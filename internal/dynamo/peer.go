package dynamo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/peerlink"
)

// Transport carries one request to a peer and brings back its response.
// An error means the peer could not be reached or did not answer (the
// failure detector counts it); a peer's own refusal comes back inside the
// response. Defined here, where it is consumed; implemented between
// processes by LinkTransport (the default) and HTTPTransport, and in one
// process by Network.
type Transport interface {
	Call(ctx context.Context, to string, req []byte) ([]byte, error)
}

// ErrUnreachable wraps every transport failure.
var ErrUnreachable = errors.New("dynamo: peer unreachable")

// maxRPC bounds a node-to-node message: a leaf of anti-entropy may carry
// many values, a replica write carries at most a few siblings.
const maxRPC = 256 << 20

// PeerTransport names how nodes carry messages between processes
// (--peer-transport).
type PeerTransport string

// The peer transports.
const (
	// PeerLink: one framed, multiplexed connection per peer
	// (internal/platform/peerlink).
	PeerLink PeerTransport = "link"
	// PeerHTTP: one HTTP/1.1 POST per message, over pooled keep-alive
	// connections.
	PeerHTTP PeerTransport = "http"
)

// LinkPath is where the peer listener takes links over.
const LinkPath = "/internal/link"

// LinkTransport sends each request over the one link this node keeps to
// the peer, finding a peer's address through Resolve (membership).
type LinkTransport struct {
	Resolve func(node string) (addr string, ok bool)
	client  *peerlink.Client
}

// NewLinkTransport returns a transport whose links are authenticated by
// peers and whose answers are at most maxFrame bytes.
func NewLinkTransport(resolve func(string) (string, bool), peers *auth.Peers) *LinkTransport {
	return &LinkTransport{Resolve: resolve, client: peerlink.NewClient(LinkPath, peers.ClientTLS(), maxRPC)}
}

// Call implements Transport.
func (t *LinkTransport) Call(ctx context.Context, to string, req []byte) ([]byte, error) {
	addr, ok := t.Resolve(to)
	if !ok {
		return nil, fmt.Errorf("%w: %s has no known address", ErrUnreachable, to)
	}
	resp, err := t.client.Call(ctx, addr, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, to, err)
	}
	return resp, nil
}

// Close closes the links.
func (t *LinkTransport) Close() { t.client.Close() }

// NewLinkServer serves this node's side of the peers' links: mount it with
// PeerHandler and close it before the node.
func (n *Node) NewLinkServer(logger *slog.Logger) *peerlink.Server {
	return peerlink.NewServer(n.Handle, peerlink.DefaultLimits(int(n.MaxPeerBody())), logger)
}

// HTTPTransport posts requests to PEER-ADDR/internal/rpc on the peer
// listener (https under the cluster key), finding a peer's address
// through Resolve (membership).
type HTTPTransport struct {
	Resolve func(node string) (addr string, ok bool)
	peers   *auth.Peers
	client  *http.Client
}

// NewHTTPTransport returns a transport with pooled keep-alive connections.
func NewHTTPTransport(resolve func(string) (string, bool), peers *auth.Peers) *HTTPTransport {
	return &HTTPTransport{Resolve: resolve, peers: peers, client: &http.Client{Transport: peers.Transport(&http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	})}}
}

// Call implements Transport.
func (t *HTTPTransport) Call(ctx context.Context, to string, req []byte) ([]byte, error) {
	addr, ok := t.Resolve(to)
	if !ok {
		return nil, fmt.Errorf("%w: %s has no known address", ErrUnreachable, to)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, t.peers.URL(addr, "/internal/rpc"), bytes.NewReader(req))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	hr.Header.Set("Content-Type", "application/octet-stream")
	resp, err := t.client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, to, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRPC))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s: status %d, %v", ErrUnreachable, to, resp.StatusCode, err)
	}
	return body, nil
}

// Close drops idle connections.
func (t *HTTPTransport) Close() { t.client.CloseIdleConnections() }

// PeerHandler serves node-to-node messages for the peer listener: one
// per POST /internal/rpc, and links (GET LinkPath) when links is not nil.
// Serve it behind auth.Peers.Guard, which admits peers and caps the body.
func (n *Node) PeerHandler(links *peerlink.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /internal/rpc", n.handleRPC)
	if links != nil {
		mux.Handle("GET "+LinkPath, links)
	}
	return mux
}

// MaxPeerBody is the peer request limit: a replica batch (closed at
// batchBytes), or one key's versions. The caps are checked by each
// coordinator against its own replica, so coordinators racing on one key
// can together pass them — by at most N-fold — and a hand-off of such a
// key must still fit.
func (n *Node) MaxPeerBody() int64 {
	return int64(n.cfg.N)*int64(n.cfg.MaxKeyBytes) + batchBytes + 1<<20
}

func (n *Node) handleRPC(w http.ResponseWriter, r *http.Request) {
	req, err := io.ReadAll(r.Body)
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "reading the message: %s", err.Error()))
		return
	}
	resp := n.Handle(r.Context(), req)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(len(resp)))
	_, _ = w.Write(resp)
}
