package raftkv

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"go.etcd.io/raft/v3"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

// The HTTP API of every node. A follower needs no HTTP forwarding: Raft
// itself forwards a follower's proposals and ReadIndex requests to the
// leader, so any node serves any request.
//
//	PUT    /v1/kv/{key}  body = value; ?if_revision=N  → 200 {"revision"} | 412 {"error","revision"}
//	GET    /v1/kv/{key}  ?stale=true                   → 200 {"key","value","value_b64","revision"} | 404
//	DELETE /v1/kv/{key}  ?if_revision=N                → 200 {"revision"} | 412
//	GET    /v1/cluster                                 → leader, term, commit, applied, members
//
// Exactly-once: a client may send X-Client-ID and X-Request-Seq (what
// client.Client does); retries of that request are then answered from the
// session table instead of applied again, so the server itself retries it
// until its time runs out. Without them the server retries only what Raft
// certainly did not take (no leader, a dropped proposal); a request that
// timed out after being proposed is a 503 saying its outcome is unknown.

// API serves a node over HTTP.
type API struct {
	node     *Node
	timeout  time.Duration
	maxKey   int
	maxValue int
	book     *AddressBook // nil in one process: membership is not served
	admin    *auth.AdminToken
	// active returns the voters the leader has heard from recently.
	active func(ctx context.Context) (map[uint64]bool, error)
}

// NewAPI returns the HTTP API of node; requests give up with 503 after timeout.
func NewAPI(node *Node, timeout time.Duration, maxValue int) *API {
	return &API{node: node, timeout: timeout, maxKey: 1024, maxValue: maxValue}
}

// Handler returns the routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) { a.write(w, r, kv.OpPut) })
	mux.HandleFunc("DELETE /v1/kv/{key...}", func(w http.ResponseWriter, r *http.Request) { a.write(w, r, kv.OpDelete) })
	mux.HandleFunc("GET /v1/kv/{key...}", a.get)
	mux.HandleFunc("GET /v1/cluster", a.cluster)
	if a.book != nil {
		mux.Handle("POST /v1/members", a.admin.RequireFunc(a.addMember))
		mux.Handle("DELETE /v1/members/{id}", a.admin.RequireFunc(a.removeMember))
	}
	return mux
}

// WithMembership serves membership changes (POST /v1/members {"id",
// "peer_addr"}, DELETE /v1/members/{id}) to holders of the admin token,
// answering with the members and their peer addresses — what a joining
// node needs to reach them. A change that would leave fewer active voters
// than a quorum is refused (409), as etcd's strict reconfiguration check
// does; active asks the leader which voters it hears from.
func (a *API) WithMembership(b *AddressBook, admin *auth.AdminToken, active func(context.Context) (map[uint64]bool, error)) *API {
	a.book, a.admin, a.active = b, admin, active
	return a
}

func (a *API) members() []MemberAddr { return sortedMembers(a.node.Members(), a.book.Addrs()) }

func (a *API) addMember(w http.ResponseWriter, r *http.Request) {
	var m MemberAddr
	if err := httpx.DecodeJSON(r, &m); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if m.ID == 0 || m.PeerAddr == "" {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "want {\"id\": N ≥ 1, \"peer_addr\": \"host:port\"}"))
		return
	}
	if err := validPeerAddr(m.PeerAddr); err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "%s", err.Error()))
		return
	}
	addrs := a.book.Addrs()
	for _, v := range a.node.Members() {
		switch {
		case v == m.ID && addrs[v] == m.PeerAddr:
			httpx.WriteJSON(w, http.StatusOK, map[string]any{"members": a.members()}) // already in: a retried join
			return
		case v == m.ID:
			httpx.WriteError(w, r, apperr.E(apperr.Conflict, "node %d is a member at %s; remove it first", v, addrs[v]))
			return
		case addrs[v] == m.PeerAddr:
			httpx.WriteError(w, r, apperr.E(apperr.Conflict, "peer address %s belongs to member %d", m.PeerAddr, v))
			return
		}
	}
	a.change(w, r, true, m.ID, m.PeerAddr)
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "member ID %q: want an integer ≥ 1", r.PathValue("id")))
		return
	}
	a.change(w, r, false, id, "")
}

func (a *API) change(w http.ResponseWriter, r *http.Request, add bool, id uint64, addr string) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	if err := a.safeToChange(ctx, add, id); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	err := resilience.Retry(ctx, resilience.Backoff{Initial: 50 * time.Millisecond}, func(ctx context.Context) error {
		actx, acancel := context.WithTimeout(ctx, max(a.timeout/3, 200*time.Millisecond))
		defer acancel()
		return a.node.ChangeMembership(actx, add, id, addr)
	})
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "membership change not confirmed within %v: %v", a.timeout, err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"members": a.members()})
}

// safeToChange applies checkReconfig to the leader's view. A leader that
// was just elected has not heard from every follower yet, so an unsafe
// verdict is re-asked for up to two election timeouts before it stands.
func (a *API) safeToChange(ctx context.Context, add bool, id uint64) error {
	wait := 2 * time.Duration(a.node.cfg.ElectionTicks) * a.node.cfg.TickInterval
	deadline := time.Now().Add(wait)
	return resilience.Retry(ctx, resilience.Backoff{Initial: 50 * time.Millisecond}, func(ctx context.Context) error {
		active, err := a.active(ctx)
		if err != nil {
			return resilience.Permanent(apperr.E(apperr.Unavailable, "cannot check the quorum: %v", err))
		}
		err = checkReconfig(a.node.Members(), active, add, id)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotMember):
			return resilience.Permanent(apperr.E(apperr.NotFound, "node %d is not a member", id))
		case time.Now().After(deadline):
			return resilience.Permanent(apperr.E(apperr.Conflict, "%s", err.Error()))
		}
		return apperr.E(apperr.Conflict, "%s", err.Error()) // asked again; out of time, it stands
	})
}

type revisionBody struct {
	Revision int64 `json:"revision"`
}

type conflictBody struct {
	Error    string `json:"error"`
	Revision int64  `json:"revision"`
}

type getBody struct {
	Key      string  `json:"key"`
	Value    *string `json:"value,omitempty"`
	ValueB64 string  `json:"value_b64"`
	Revision int64   `json:"revision"`
}

func (a *API) key(r *http.Request) ([]byte, error) {
	k := r.PathValue("key")
	switch {
	case k == "":
		return nil, apperr.E(apperr.Invalid, "empty key")
	case len(k) > a.maxKey:
		return nil, apperr.E(apperr.Invalid, "key is %d bytes; the limit is %d", len(k), a.maxKey)
	}
	return []byte(k), nil
}

func (a *API) write(w http.ResponseWriter, r *http.Request, op kv.Op) {
	key, err := a.key(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	cmd := kv.Command{Op: op, Key: key, IfRevision: kv.Unconditional}
	if s := r.URL.Query().Get("if_revision"); s != "" {
		if cmd.IfRevision, err = strconv.ParseInt(s, 10, 64); err != nil || cmd.IfRevision < 0 {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "?if_revision=%s: want an integer ≥ 0 (0: only if absent)", s))
			return
		}
	}
	if cmd.Client, cmd.Seq, err = a.identity(r); err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	if op == kv.OpPut {
		if cmd.Value, err = io.ReadAll(io.LimitReader(r.Body, int64(a.maxValue)+1)); err != nil || len(cmd.Value) > a.maxValue {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, "value is over the limit of %d bytes", a.maxValue))
			return
		}
	}
	res, err := a.propose(r.Context(), cmd)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	switch res.Status {
	case kv.Applied:
		httpx.WriteJSON(w, http.StatusOK, revisionBody{Revision: res.Revision})
	case kv.Failed:
		httpx.WriteJSON(w, http.StatusPreconditionFailed, conflictBody{Error: "revision does not match", Revision: res.Current})
	default:
		httpx.WriteError(w, r, apperr.E(apperr.Conflict, "request %d of client %d is older than one already applied", cmd.Seq, cmd.Client))
	}
}

func (a *API) identity(r *http.Request) (client, seq uint64, err error) {
	c, s := r.Header.Get("X-Client-ID"), r.Header.Get("X-Request-Seq")
	if c == "" && s == "" {
		return 0, 0, nil // no deduplication
	}
	client, err1 := strconv.ParseUint(c, 10, 64)
	seq, err2 := strconv.ParseUint(s, 10, 64)
	if err1 != nil || err2 != nil || client == 0 || seq == 0 {
		return 0, 0, apperr.E(apperr.Invalid, "X-Client-ID and X-Request-Seq must both be positive integers")
	}
	return client, seq, nil
}

// propose retries within the request's time budget: always when the
// request is numbered (retries are deduplicated), otherwise only when Raft
// certainly did not take it. Out of time: 503.
func (a *API) propose(ctx context.Context, cmd kv.Command) (kv.Result, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var res kv.Result
	var last error
	err := resilience.Retry(ctx, resilience.Backoff{Initial: 20 * time.Millisecond}, func(ctx context.Context) error {
		actx, acancel := context.WithTimeout(ctx, max(a.timeout/5, 100*time.Millisecond))
		defer acancel()
		var err error
		if res, err = a.node.Propose(actx, cmd); err == nil {
			return nil
		}
		last = err
		if errors.Is(err, ErrStopped) {
			return resilience.Permanent(apperr.E(apperr.Unavailable, "the node is stopping; the write was not applied"))
		}
		if ctx.Err() != nil {
			return resilience.Permanent(a.gaveUp(start, err))
		}
		if !notTaken(err) && cmd.Client == 0 {
			return resilience.Permanent(apperr.E(apperr.Unavailable, "no quorum: the write was not confirmed within %v and may still be applied; it is not retried because it is not numbered (send X-Client-ID and X-Request-Seq to retry it safely)", waited(start)))
		}
		return err
	})
	if err != nil && apperr.CodeOf(err) == apperr.Internal { // the time ran out between attempts
		err = a.gaveUp(start, last)
	}
	return res, err
}

// notTaken reports whether Raft certainly did not take a proposal.
func notTaken(err error) bool {
	return errors.Is(err, ErrNoLeader) || errors.Is(err, raft.ErrProposalDropped)
}

// waited is how long a request really waited: an unnumbered write gives up
// after its first attempt, long before the request timeout.
func waited(start time.Time) time.Duration { return time.Since(start).Truncate(10 * time.Millisecond) }

// gaveUp is the answer to a write out of time after last failed.
func (a *API) gaveUp(start time.Time, last error) error {
	if notTaken(last) {
		return apperr.E(apperr.Unavailable, "no quorum: no leader accepted the write within %v; it was not applied", waited(start))
	}
	return apperr.E(apperr.Unavailable, "no quorum: the write was not confirmed within %v and may still be applied", waited(start))
}

func (a *API) get(w http.ResponseWriter, r *http.Request) {
	key, err := a.key(r)
	if err != nil {
		httpx.WriteError(w, r, err)
		return
	}
	stale := r.URL.Query().Get("stale") == "true"
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	defer cancel()
	var v []byte
	var mod int64
	var ok bool
	err = resilience.Retry(ctx, resilience.Backoff{Initial: 20 * time.Millisecond}, func(ctx context.Context) error {
		actx, acancel := context.WithTimeout(ctx, max(a.timeout/5, 100*time.Millisecond))
		defer acancel()
		var err error
		v, mod, _, ok, err = a.node.Read(actx, key, !stale)
		if errors.Is(err, ErrStopped) {
			return resilience.Permanent(err)
		}
		return err
	})
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Unavailable, "no quorum: the read could not be confirmed by a leader within %v (?stale=true reads this node's state)", a.timeout))
		return
	}
	if !ok {
		httpx.WriteJSON(w, http.StatusNotFound, httpx.ErrorBody{Error: "key not found"})
		return
	}
	body := getBody{Key: string(key), ValueB64: base64.StdEncoding.EncodeToString(v), Revision: mod}
	if utf8.Valid(v) {
		s := string(v)
		body.Value = &s
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// ClusterInfo is GET /v1/cluster.
type ClusterInfo struct {
	ID       uint64           `json:"id"`
	Leader   uint64           `json:"leader"`
	Term     uint64           `json:"term"`
	Commit   uint64           `json:"commit_index"`
	Applied  uint64           `json:"applied_index"`
	Revision int64            `json:"revision"`
	State    string           `json:"state"`
	Members  []MemberProgress `json:"members"`
}

// MemberProgress is one voter as the leader tracks it.
type MemberProgress struct {
	ID    uint64 `json:"id"`
	Match uint64 `json:"match_index,omitempty"`
	State string `json:"replication_state,omitempty"`
}

func (a *API) cluster(w http.ResponseWriter, r *http.Request) {
	st := a.node.Status()
	a.node.mu.Lock()
	info := ClusterInfo{ID: a.node.ID(), Leader: st.Lead, Term: st.Term, Commit: st.Commit, Applied: a.node.kv.Applied(),
		Revision: a.node.kv.Revision(), State: st.RaftState.String()}
	voters := append([]uint64(nil), a.node.confState.Voters...)
	a.node.mu.Unlock()
	for _, id := range voters {
		m := MemberProgress{ID: id}
		if p, ok := st.Progress[id]; ok {
			m.Match, m.State = p.Match, p.State.String()
		}
		info.Members = append(info.Members, m)
	}
	httpx.WriteJSON(w, http.StatusOK, info)
}
