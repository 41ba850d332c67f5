package dynamo

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/scalelab/scalelab/internal/dynamo/vclock"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// ContextHeader carries the causal context between reads and writes.
const ContextHeader = "X-Causal-Context"

// Siblings is the body of a 300 Multiple Choices answer.
type Siblings struct {
	Siblings []string `json:"siblings"` // base64 (standard) of each value
	Context  string   `json:"context"`
}

// Handler serves the node's HTTP API (Riak's contract, simplified):
//
//	PUT    /kv/{key}  body = value, X-Causal-Context from a read; ?w=  → 204 + X-Causal-Context
//	GET    /kv/{key}  ?r=  → 200 value | 300 siblings | 404
//	DELETE /kv/{key}  X-Causal-Context; ?w=  → 204
//	GET    /cluster   this node's view of members and the ring
//
// Node-to-node messages are not here: PeerHandler serves them on the
// peer listener.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /kv/{key...}", n.handlePut)
	mux.HandleFunc("GET /kv/{key...}", n.handleGet)
	mux.HandleFunc("DELETE /kv/{key...}", n.handleDelete)
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, n.Cluster())
	})
	return mux
}

// MaxBody is the client request body limit: a value at the limit plus
// room for headers' worth of slack.
func (n *Node) MaxBody() int64 { return int64(n.cfg.MaxValue) + 1<<20 }

func quorumParam(r *http.Request, name string, max int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > max {
		return 0, apperr.E(apperr.Invalid, "?%s=%s: want an integer from 1 to N=%d", name, s, max)
	}
	return v, nil
}

func causalContext(r *http.Request) (vclock.Clock, error) {
	c, err := vclock.Parse(r.Header.Get(ContextHeader))
	if err != nil {
		return nil, apperr.E(apperr.Invalid, "%s: %s", ContextHeader, err.Error())
	}
	return c, nil
}

func (n *Node) write(w http.ResponseWriter, r *http.Request, tombstone bool) {
	key := []byte(r.PathValue("key"))
	wq, err := quorumParam(r, "w", n.cfg.N)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ctx, err := causalContext(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	var value []byte
	if !tombstone {
		if value, err = io.ReadAll(io.LimitReader(r.Body, int64(n.cfg.MaxValue)+1)); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				err = apperr.E(apperr.Invalid, "value is over the limit of %d bytes", n.cfg.MaxValue)
			} else {
				err = apperr.E(apperr.Invalid, "reading the value: %s", err.Error())
			}
			httpx.WriteError(w, r, err)
			return
		}
		if len(value) > n.cfg.MaxValue {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "value is over the limit of %d bytes", n.cfg.MaxValue))
			return
		}
	}
	clock, err := n.Put(r.Context(), key, WriteRequest{Context: ctx, Value: value, Tombstone: tombstone, W: wq})
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	w.Header().Set(ContextHeader, clock.String())
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) handlePut(w http.ResponseWriter, r *http.Request)    { n.write(w, r, false) }
func (n *Node) handleDelete(w http.ResponseWriter, r *http.Request) { n.write(w, r, true) }

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	rq, err := quorumParam(r, "r", n.cfg.N)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	versions, err := n.Get(r.Context(), []byte(r.PathValue("key")), rq)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	ctx := vclock.Context(versions).String()
	var live []vclock.Version
	for _, v := range versions {
		if !v.Tombstone {
			live = append(live, v)
		}
	}
	if ctx != "" {
		w.Header().Set(ContextHeader, ctx)
	}
	switch len(live) {
	case 0:
		httpx.WriteJSON(w, http.StatusNotFound, httpx.ErrorBody{Error: "key not found"})
	case 1:
		// A delete concurrent with an update loses to the update on read
		// ("add wins"); the context covers the tombstone, so the next
		// write replaces both.
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(live[0].Value)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(live[0].Value)
	default:
		s := Siblings{Context: ctx}
		for _, v := range live {
			s.Siblings = append(s.Siblings, base64.StdEncoding.EncodeToString(v.Value))
		}
		httpx.WriteJSON(w, http.StatusMultipleChoices, s)
	}
}
