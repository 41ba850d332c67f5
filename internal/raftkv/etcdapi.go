package raftkv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/scalelab/scalelab/internal/platform/resilience"
	"github.com/scalelab/scalelab/internal/raftkv/kv"
)

// Txn replicates an etcd transaction and returns its answer once applied
// here. A transaction refused by a check changes nothing and returns the
// check's error (kv.ErrKeyNotFound, kv.ErrDuplicateKey, …).
func (n *Node) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := kv.CheckTxn(r); err != nil {
		return nil, err
	}
	if kv.ReadOnly(r) {
		// Reads alone need no log entry: a linearizable read of the
		// same answer costs a ReadIndex round, not a write. It runs on
		// a view, off the apply path (its ranges may be long).
		var view *kv.Store
		if err := n.local(ctx, true, func(s *kv.Store) error { view = s.View(); return nil }); err != nil {
			return nil, err
		}
		return view.ReadTxn(r)
	}
	cmd, err := kv.TxnCommand(r)
	if err != nil {
		return nil, err
	}
	res, err := n.Propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if res.TxnErr != nil {
		return nil, res.TxnErr
	}
	return res.Txn, nil
}

// Range answers an etcd range request: linearizable (ReadIndex) unless it
// asks to be serializable, when it is this node's state as applied.
func (n *Node) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := kv.CheckRange(r); err != nil {
		return nil, err
	}
	if len(r.RangeEnd) == 0 { // one key: read it under the lock
		var resp *pb.RangeResponse
		err := n.local(ctx, !r.Serializable, func(s *kv.Store) error {
			var err error
			resp, err = s.Range(r)
			return err
		})
		return resp, err
	}
	// A range may cover the whole store: read it from a view, so that
	// applying the log does not wait for it.
	var view *kv.Store
	if err := n.local(ctx, !r.Serializable, func(s *kv.Store) error { view = s.View(); return nil }); err != nil {
		return nil, err
	}
	return view.Range(r)
}

// local runs read on this node's state, after a read barrier if
// linearizable.
func (n *Node) local(ctx context.Context, linearizable bool, read func(*kv.Store) error) error {
	if linearizable {
		if err := n.readBarrier(ctx); err != nil {
			return err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return read(n.kv)
}

// EtcdKV serves etcd's KV service (go.etcd.io/etcd/api/v3, the types
// etcd itself generates) from a node, so that etcdctl and clientv3
// programs work against raftkv unchanged. Leases, watches and the other
// services answer Unimplemented.
type EtcdKV struct {
	pb.UnimplementedKVServer
	pick     func() (*Node, error) // the node that serves a request
	timeout  time.Duration
	maxValue int
}

// NewEtcdKV serves node; every request waits at most timeout for a quorum,
// and a value may hold at most maxValue bytes.
func NewEtcdKV(node *Node, timeout time.Duration, maxValue int) *EtcdKV {
	return NewEtcdKVOver(func() (*Node, error) { return node, nil }, timeout, maxValue)
}

// NewEtcdKVOver serves each request on the node pick gives: one of the
// running nodes of an in-process cluster, whose nodes can be stopped and
// restarted while it serves. pick's error answers the request.
func NewEtcdKVOver(pick func() (*Node, error), timeout time.Duration, maxValue int) *EtcdKV {
	return &EtcdKV{pick: pick, timeout: timeout, maxValue: maxValue}
}

func header(n *Node, rev int64) *pb.ResponseHeader {
	return &pb.ResponseHeader{MemberId: n.ID(), Revision: rev, RaftTerm: n.term.Load()}
}

// Range implements etcd's Range.
func (e *EtcdKV) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	n, err := e.pick()
	if err != nil {
		return nil, etcdError(err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	resp, err := n.Range(ctx, r)
	if err != nil {
		return nil, etcdError(err)
	}
	resp.Header = header(n, resp.Header.GetRevision())
	return resp, nil
}

// Put implements etcd's Put: a transaction of one put. A plain put (no
// previous value asked for, nothing kept) is the store's own put command,
// whose log entry is a few bytes of header instead of a protobuf
// transaction to decode on every replica.
func (e *EtcdKV) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if len(r.Key) > 0 && r.Lease == 0 && !r.PrevKv && !r.IgnoreValue && !r.IgnoreLease {
		if len(r.Value) > e.maxValue {
			return nil, rpctypes.ErrGRPCRequestTooLarge
		}
		var resp *pb.PutResponse
		err := e.write(ctx, func(ctx context.Context, n *Node) error {
			res, err := n.Propose(ctx, kv.Command{Op: kv.OpPut, Key: r.Key, Value: r.Value, IfRevision: kv.Unconditional})
			if err == nil {
				resp = &pb.PutResponse{Header: header(n, res.Revision)}
			}
			return err
		})
		if err != nil {
			return nil, etcdError(err)
		}
		return resp, nil
	}
	t, err := e.txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: r}}}})
	if err != nil {
		return nil, err
	}
	resp := t.Responses[0].GetResponsePut()
	resp.Header = t.Header
	return resp, nil
}

// DeleteRange implements etcd's DeleteRange: a transaction of one delete.
func (e *EtcdKV) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	t, err := e.txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: r}}}})
	if err != nil {
		return nil, err
	}
	resp := t.Responses[0].GetResponseDeleteRange()
	resp.Header = t.Header
	return resp, nil
}

// Txn implements etcd's Txn.
func (e *EtcdKV) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	return e.txn(ctx, r)
}

func (e *EtcdKV) txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if tooLarge(r, e.maxValue) {
		return nil, rpctypes.ErrGRPCRequestTooLarge
	}
	var resp *pb.TxnResponse
	err := e.write(ctx, func(ctx context.Context, n *Node) error {
		var err error
		if resp, err = n.Txn(ctx, r); err == nil {
			stamp(n, resp)
		}
		return err
	})
	if err != nil {
		return nil, etcdError(err)
	}
	return resp, nil
}

// write runs do on a node within the request's time, again while Raft
// certainly did not take it — the node knows no leader (it has just
// started, or an election is under way) or Raft dropped the proposal.
// etcd's clients do not retry a write that failed, so a write sent during
// an election waits it out here instead of failing at once, as the HTTP
// API's writes do. Any other answer, success or not, is final.
func (e *EtcdKV) write(ctx context.Context, do func(context.Context, *Node) error) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	return resilience.Retry(ctx, resilience.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond}, func(ctx context.Context) error {
		n, err := e.pick()
		if err == nil {
			err = do(ctx, n)
		}
		if err != nil && !notTaken(err) {
			return resilience.Permanent(err)
		}
		return err
	})
}

// stamp gives every header of a transaction's answer, nested ones
// included, the revision after it and this member's ID and term (the state
// machine sets only the top header's revision).
func stamp(n *Node, t *pb.TxnResponse) {
	t.Header = header(n, t.Header.GetRevision())
	for _, r := range t.Responses {
		switch {
		case r.GetResponseRange() != nil:
			r.GetResponseRange().Header = t.Header
		case r.GetResponsePut() != nil:
			r.GetResponsePut().Header = t.Header
		case r.GetResponseDeleteRange() != nil:
			r.GetResponseDeleteRange().Header = t.Header
		case r.GetResponseTxn() != nil:
			stamp(n, r.GetResponseTxn())
		}
	}
}

func tooLarge(r *pb.TxnRequest, maxValue int) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil && len(p.Value) > maxValue {
				return true
			}
			if t := op.GetRequestTxn(); t != nil && tooLarge(t, maxValue) {
				return true
			}
		}
	}
	return false
}

// Compact implements etcd's Compact. The store keeps no history (every
// revision but the current one is already compacted), so there is nothing
// to do for a revision up to the current one.
func (e *EtcdKV) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	n, err := e.pick()
	if err != nil {
		return nil, etcdError(err)
	}
	var rev int64
	err = n.local(ctx, false, func(s *kv.Store) error {
		rev = s.Revision()
		return nil
	})
	if err != nil {
		return nil, etcdError(err)
	}
	if r.Revision > rev {
		return nil, rpctypes.ErrGRPCFutureRev
	}
	return &pb.CompactionResponse{Header: header(n, rev)}, nil
}

// etcdError answers with the status etcd gives for the same failure, so
// that clientv3 recognises it (and retries what etcd's clients retry).
func etcdError(err error) error {
	for _, m := range []struct {
		err  error
		grpc error
	}{
		{kv.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
		{kv.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
		{kv.ErrValueProvided, rpctypes.ErrGRPCValueProvided},
		{kv.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
		{kv.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
		{kv.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
		{kv.ErrSortOption, rpctypes.ErrGRPCInvalidSortOption},
		{kv.ErrCompacted, rpctypes.ErrGRPCCompacted},
		{kv.ErrFutureRevision, rpctypes.ErrGRPCFutureRev},
		{ErrNoLeader, rpctypes.ErrGRPCNoLeader},
		{ErrStopped, rpctypes.ErrGRPCStopped},
		{context.DeadlineExceeded, rpctypes.ErrGRPCTimeout},
	} {
		if errors.Is(err, m.err) {
			return m.grpc
		}
	}
	switch {
	case errors.Is(err, kv.ErrLease):
		return status.Error(codes.Unimplemented, "raftkv: leases are not implemented")
	case errors.Is(err, kv.ErrBadRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// GRPCLimits bound the gRPC listener as httpx bounds the HTTP ones.
type GRPCLimits struct {
	MaxConns       int // open connections
	MaxStreams     int // concurrent requests per connection
	MaxRequest     int // bytes of one request
	IdleConnection time.Duration
}

// ServeEtcdGRPC serves the KV service on addr until ctx ends, then stops
// gracefully (in-flight requests get drain to finish). It returns once
// bound, with a channel that reports how serving ended.
func ServeEtcdGRPC(ctx context.Context, addr string, kvs *EtcdKV, l GRPCLimits, reg prometheus.Registerer, drain time.Duration) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("raftkv: gRPC listener: %w", err)
	}
	ln = netutil.LimitListener(ln, l.MaxConns)
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scalelab_raftkv_grpc_request_seconds",
		Help:    "etcd KV API requests served over gRPC, by method and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"method", "code"})
	if reg != nil {
		if err := reg.Register(latency); err != nil {
			are, ok := err.(prometheus.AlreadyRegisteredError)
			if !ok {
				ln.Close()
				return nil, nil, fmt.Errorf("raftkv: gRPC metrics: %w", err)
			}
			latency = are.ExistingCollector.(*prometheus.HistogramVec) // a server before this one in the process
		}
	}
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(l.MaxRequest),
		grpc.MaxConcurrentStreams(uint32(l.MaxStreams)),
		grpc.ConnectionTimeout(5*time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: l.IdleConnection, Time: 2 * time.Hour, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := h(ctx, req)
			latency.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
			return resp, err
		}),
	)
	pb.RegisterKVServer(srv, kvs)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	out := make(chan error, 1)
	go func() {
		var err error
		select {
		case <-ctx.Done():
			stopped := make(chan struct{})
			go func() { srv.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(drain):
				srv.Stop()
			}
			err = <-done
			if errors.Is(err, grpc.ErrServerStopped) {
				err = nil
			}
		case err = <-done:
		}
		out <- err
	}()
	return ln.Addr(), out, nil
}
