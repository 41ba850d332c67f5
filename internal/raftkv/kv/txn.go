package kv

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// etcd's KV API on the store: Range, and Txn, of which Put and DeleteRange
// are the one-operation cases. The semantics are etcd's (its
// server/etcdserver/txn package), with one difference: the store keeps no
// history, so a read at any revision but the current one is answered as
// compacted.

// The errors of etcd's API, in the store's terms; the gRPC layer maps
// each to etcd's own status so that clients recognise it.
var (
	ErrEmptyKey       = errors.New("kv: key is not provided")
	ErrKeyNotFound    = errors.New("kv: key not found")
	ErrValueProvided  = errors.New("kv: value is provided")
	ErrLeaseProvided  = errors.New("kv: lease is provided")
	ErrLease          = errors.New("kv: leases are not implemented")
	ErrTooManyOps     = errors.New("kv: too many operations in txn request")
	ErrDuplicateKey   = errors.New("kv: duplicate key given in txn request")
	ErrSortOption     = errors.New("kv: invalid sort option")
	ErrCompacted      = errors.New("kv: required revision has been compacted (the store keeps only the current revision)")
	ErrFutureRevision = errors.New("kv: required revision is a future revision")
	ErrBadRequest     = errors.New("kv: malformed request")
)

// MaxTxnOps bounds the compares and the operations of each branch of a
// transaction (etcd's --max-txn-ops default), and MaxTxnDepth the nesting
// of transactions in transactions.
const (
	MaxTxnOps   = 128
	MaxTxnDepth = 8
)

// TxnCommand is the Raft command of an etcd transaction.
func TxnCommand(r *pb.TxnRequest) (Command, error) {
	raw, err := proto.Marshal(r)
	if err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return Command{Op: OpTxn, Value: raw, IfRevision: Unconditional}, nil
}

// applyTxn decodes, checks and applies a transaction. A transaction that
// is refused changes nothing: every check is made before the first write.
func (s *Store) applyTxn(raw []byte) Result {
	var r pb.TxnRequest
	if err := proto.Unmarshal(raw, &r); err != nil {
		return Result{Status: Failed, Revision: s.rev, TxnErr: fmt.Errorf("%w: %v", ErrBadRequest, err)}
	}
	if err := CheckTxn(&r); err != nil {
		return Result{Status: Failed, Revision: s.rev, TxnErr: err}
	}
	// Which branch every transaction, nested ones included, takes is
	// decided on the state before the transaction, as etcd decides it.
	path := s.txnPath(&r, nil)
	if err := s.checkPath(&r, path); err != nil {
		return Result{Status: Failed, Revision: s.rev, TxnErr: err}
	}
	next := s.rev + 1
	resp, _, changed := s.execTxn(&r, path, next)
	if changed {
		s.rev = next
	}
	// The revision after it; the node stamps every header with it and
	// adds cluster, member and term.
	resp.Header = &pb.ResponseHeader{Revision: s.rev}
	return Result{Status: Applied, Revision: s.rev, Txn: resp}
}

// ReadTxn answers a transaction that only reads (ReadOnly) from the
// current state, with no log entry.
func (s *Store) ReadTxn(r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := CheckTxn(r); err != nil {
		return nil, err
	}
	if !ReadOnly(r) {
		return nil, fmt.Errorf("%w: a transaction that writes goes through the log", ErrBadRequest)
	}
	path := s.txnPath(r, nil)
	if err := s.checkPath(r, path); err != nil {
		return nil, err
	}
	resp, _, _ := s.execTxn(r, path, s.rev)
	// The revision after it; the node stamps every header with it and
	// adds cluster, member and term.
	resp.Header = &pb.ResponseHeader{Revision: s.rev}
	return resp, nil
}

// ReadOnly says whether a transaction only reads, whichever branches it
// takes.
func ReadOnly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestPut() != nil, op.GetRequestDeleteRange() != nil:
				return false
			case op.GetRequestTxn() != nil && !ReadOnly(op.GetRequestTxn()):
				return false
			}
		}
	}
	return true
}

// CheckTxn validates a transaction's shape: what can be judged without
// the state. It is run before a transaction is proposed and again when it
// is applied (a log entry is not trusted to have been checked).
func CheckTxn(r *pb.TxnRequest) error { return checkTxn(r, 0) }

func checkTxn(r *pb.TxnRequest, depth int) error {
	if depth > MaxTxnDepth {
		return fmt.Errorf("%w: transactions nested deeper than %d", ErrTooManyOps, MaxTxnDepth)
	}
	if len(r.Compare) > MaxTxnOps || len(r.Success) > MaxTxnOps || len(r.Failure) > MaxTxnOps {
		return ErrTooManyOps
	}
	for _, c := range r.Compare {
		if c == nil || len(c.Key) == 0 {
			return ErrEmptyKey
		}
		if _, ok := pb.Compare_CompareResult_name[int32(c.Result)]; !ok {
			return fmt.Errorf("%w: compare result %d", ErrBadRequest, c.Result)
		}
		if _, ok := pb.Compare_CompareTarget_name[int32(c.Target)]; !ok {
			return fmt.Errorf("%w: compare target %d", ErrBadRequest, c.Target)
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkOp(op, depth); err != nil {
				return err
			}
		}
		if _, _, err := branchWrites(ops); err != nil {
			return err
		}
	}
	return nil
}

func checkOp(op *pb.RequestOp, depth int) error {
	switch {
	case op.GetRequestRange() != nil:
		return CheckRange(op.GetRequestRange())
	case op.GetRequestPut() != nil:
		p := op.GetRequestPut()
		switch {
		case len(p.Key) == 0:
			return ErrEmptyKey
		case p.Lease != 0:
			return ErrLease
		case p.IgnoreValue && len(p.Value) != 0:
			return ErrValueProvided
		}
		return nil
	case op.GetRequestDeleteRange() != nil:
		if len(op.GetRequestDeleteRange().Key) == 0 {
			return ErrEmptyKey
		}
		return nil
	case op.GetRequestTxn() != nil:
		return checkTxn(op.GetRequestTxn(), depth+1)
	}
	return fmt.Errorf("%w: an operation with no request", ErrBadRequest)
}

// CheckRange validates a range request's shape.
func CheckRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return ErrEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return ErrSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return ErrSortOption
	}
	if r.Limit < 0 || r.Revision < 0 {
		return fmt.Errorf("%w: negative limit or revision", ErrBadRequest)
	}
	return nil
}

// branchWrites lists what a branch writes: keys put and ranges deleted,
// nested transactions' branches included. A key may be written once per
// branch (etcd's rule): twice would leave its revision ambiguous.
func branchWrites(ops []*pb.RequestOp) (puts map[string]bool, dels [][2][]byte, err error) {
	puts = map[string]bool{}
	for _, op := range ops {
		switch {
		case op.GetRequestPut() != nil:
			k := string(op.GetRequestPut().Key)
			if puts[k] {
				return nil, nil, ErrDuplicateKey
			}
			puts[k] = true
		case op.GetRequestDeleteRange() != nil:
			d := op.GetRequestDeleteRange()
			dels = append(dels, [2][]byte{d.Key, d.RangeEnd})
		case op.GetRequestTxn() != nil:
			t := op.GetRequestTxn()
			sp, sd, err := branchWrites(t.Success)
			if err != nil {
				return nil, nil, err
			}
			fp, fd, err := branchWrites(t.Failure)
			if err != nil {
				return nil, nil, err
			}
			// The two branches are alternatives: they may write the same key.
			for k := range sp {
				fp[k] = true
			}
			for k := range fp {
				if puts[k] {
					return nil, nil, ErrDuplicateKey
				}
				puts[k] = true
			}
			dels = append(dels, sd...)
			dels = append(dels, fd...)
		}
	}
	for k := range puts {
		for _, d := range dels {
			if inRange([]byte(k), d[0], d[1]) {
				return nil, nil, ErrDuplicateKey
			}
		}
	}
	return puts, dels, nil
}

// inRange says whether key is in etcd's range (key, end): end empty is the
// key alone, end "\x00" every key from key on.
func inRange(k, key, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(k, key)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(k, key) >= 0
	}
	return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
}

// each calls fn for the keys of etcd's range (key, end), in key order,
// until fn returns false.
func (s *Store) each(key, end []byte, fn func(entry) bool) {
	switch {
	case len(end) == 0:
		if e, ok := s.data.Get(entry{key: string(key)}); ok {
			fn(e)
		}
	case len(end) == 1 && end[0] == 0:
		s.data.AscendGreaterOrEqual(entry{key: string(key)}, fn)
	case bytes.Compare(key, end) < 0:
		s.data.AscendRange(entry{key: string(key)}, entry{key: string(end)}, fn)
	}
}

func (e entry) keyValue(keysOnly bool) *mvccpb.KeyValue {
	kv := &mvccpb.KeyValue{Key: []byte(e.key), CreateRevision: e.createRev, ModRevision: e.modRev, Version: e.version}
	if !keysOnly {
		kv.Value = e.value
	}
	return kv
}

// Range answers an etcd range request from the current state. The
// response's values share the store's bytes: the caller must not modify
// them.
func (s *Store) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := CheckRange(r); err != nil {
		return nil, err
	}
	switch {
	case r.Revision > s.rev:
		return nil, ErrFutureRevision
	case r.Revision > 0 && r.Revision < s.rev:
		return nil, ErrCompacted
	}
	order := r.SortOrder
	// Keys come out of the tree ascending: sort only when asked for
	// anything else (etcd's defaults: a target other than the key
	// without an order means ascending).
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	} else if r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND {
		order = pb.RangeRequest_NONE
	}
	filtered := r.MinModRevision > 0 || r.MaxModRevision > 0 || r.MinCreateRevision > 0 || r.MaxCreateRevision > 0
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: s.rev}}
	var found []entry
	s.each(r.Key, r.RangeEnd, func(e entry) bool {
		resp.Count++
		if r.CountOnly || !keep(r, e) {
			return true
		}
		// Without a sort or a filter, the count is all that is needed
		// past the limit.
		if order == pb.RangeRequest_NONE && !filtered && r.Limit > 0 && int64(len(found)) > r.Limit {
			return true
		}
		found = append(found, e)
		return true
	})
	if r.CountOnly {
		return resp, nil
	}
	if order != pb.RangeRequest_NONE {
		sortEntries(found, r.SortTarget, order == pb.RangeRequest_DESCEND)
	}
	if r.Limit > 0 && int64(len(found)) > r.Limit {
		found, resp.More = found[:r.Limit], true
	}
	resp.Kvs = make([]*mvccpb.KeyValue, len(found))
	for i, e := range found {
		resp.Kvs[i] = e.keyValue(r.KeysOnly)
	}
	return resp, nil
}

func keep(r *pb.RangeRequest, e entry) bool {
	return (r.MinModRevision == 0 || e.modRev >= r.MinModRevision) &&
		(r.MaxModRevision == 0 || e.modRev <= r.MaxModRevision) &&
		(r.MinCreateRevision == 0 || e.createRev >= r.MinCreateRevision) &&
		(r.MaxCreateRevision == 0 || e.createRev <= r.MaxCreateRevision)
}

func sortEntries(es []entry, target pb.RangeRequest_SortTarget, descend bool) {
	cmp := func(a, b entry) int {
		switch target {
		case pb.RangeRequest_VERSION:
			return cmp.Compare(a.version, b.version)
		case pb.RangeRequest_CREATE:
			return cmp.Compare(a.createRev, b.createRev)
		case pb.RangeRequest_MOD:
			return cmp.Compare(a.modRev, b.modRev)
		case pb.RangeRequest_VALUE:
			return bytes.Compare(a.value, b.value)
		}
		return cmp.Compare(a.key, b.key)
	}
	slices.SortStableFunc(es, func(a, b entry) int {
		if descend {
			return cmp(b, a)
		}
		return cmp(a, b)
	})
}

// compare evaluates one predicate on the keys of its range: it holds if it
// holds for every key; on an empty range a value compare fails and the
// others compare against zero (etcd's rule: an absent key has version,
// create and mod revision 0).
func (s *Store) compare(c *pb.Compare) bool {
	held, any := true, false
	s.each(c.Key, c.RangeEnd, func(e entry) bool {
		any = true
		held = compareEntry(c, e)
		return held
	})
	if !any {
		return c.Target != pb.Compare_VALUE && compareEntry(c, entry{})
	}
	return held
}

func compareEntry(c *pb.Compare, e entry) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(e.value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmp.Compare(e.createRev, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmp.Compare(e.modRev, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmp.Compare(e.version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmp.Compare(0, c.GetLease()) // no key has a lease
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return false
}

// txnPath records, depth first, which branch each transaction takes: true
// for success.
func (s *Store) txnPath(r *pb.TxnRequest, path []bool) []bool {
	ok := true
	for _, c := range r.Compare {
		if !s.compare(c) {
			ok = false
			break
		}
	}
	path = append(path, ok)
	for _, op := range branch(r, ok) {
		if t := op.GetRequestTxn(); t != nil {
			path = s.txnPath(t, path)
		}
	}
	return path
}

func branch(r *pb.TxnRequest, success bool) []*pb.RequestOp {
	if success {
		return r.Success
	}
	return r.Failure
}

// checkPath makes the checks that need the state, on the branches the
// transaction will take: a put that keeps the key's value or lease needs
// the key to exist.
func (s *Store) checkPath(r *pb.TxnRequest, path []bool) error {
	var walk func(r *pb.TxnRequest) error
	walk = func(r *pb.TxnRequest) error {
		ok := path[0]
		path = path[1:]
		for _, op := range branch(r, ok) {
			if q := op.GetRequestRange(); q != nil {
				switch {
				case q.Revision > s.rev:
					return ErrFutureRevision
				case q.Revision > 0 && q.Revision < s.rev:
					return ErrCompacted
				}
			}
			if p := op.GetRequestPut(); p != nil && (p.IgnoreValue || p.IgnoreLease) {
				if _, exists := s.data.Get(entry{key: string(p.Key)}); !exists {
					return ErrKeyNotFound
				}
			}
			if t := op.GetRequestTxn(); t != nil {
				if err := walk(t); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk(r)
}

// execTxn runs the branches path chose, writing at revision rev; it
// returns the rest of the path and whether anything changed.
func (s *Store) execTxn(r *pb.TxnRequest, path []bool, rev int64) (*pb.TxnResponse, []bool, bool) {
	ok := path[0]
	path = path[1:]
	resp := &pb.TxnResponse{Succeeded: ok}
	changed := false
	for _, op := range branch(r, ok) {
		switch {
		case op.GetRequestRange() != nil:
			rr, err := s.Range(op.GetRequestRange())
			if err != nil { // cannot happen: checkPath checked the revision
				rr = &pb.RangeResponse{}
			}
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}})
		case op.GetRequestPut() != nil:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: s.execPut(op.GetRequestPut(), rev)}})
			changed = true
		case op.GetRequestDeleteRange() != nil:
			dr := s.execDelete(op.GetRequestDeleteRange())
			changed = changed || dr.Deleted > 0
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}})
		case op.GetRequestTxn() != nil:
			var tr *pb.TxnResponse
			var c bool
			tr, path, c = s.execTxn(op.GetRequestTxn(), path, rev)
			changed = changed || c
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}})
		}
	}
	return resp, path, changed
}

func (s *Store) execPut(p *pb.PutRequest, rev int64) *pb.PutResponse {
	resp := &pb.PutResponse{}
	cur, exists := s.data.Get(entry{key: string(p.Key)})
	if p.PrevKv && exists {
		resp.PrevKv = cur.keyValue(false)
	}
	value := p.Value
	if p.IgnoreValue {
		value = cur.value
	}
	e := entry{key: string(p.Key), value: append([]byte(nil), value...), createRev: rev, modRev: rev, version: 1}
	if exists {
		e.createRev, e.version = cur.createRev, cur.version+1
	}
	s.data.ReplaceOrInsert(e)
	return resp
}

func (s *Store) execDelete(d *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	resp := &pb.DeleteRangeResponse{}
	var doomed []entry
	s.each(d.Key, d.RangeEnd, func(e entry) bool {
		doomed = append(doomed, e)
		return true
	})
	for _, e := range doomed {
		s.data.Delete(e)
		if d.PrevKv {
			resp.PrevKvs = append(resp.PrevKvs, e.keyValue(false))
		}
	}
	resp.Deleted = int64(len(doomed))
	return resp
}
