package kv

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// txnStore applies etcd transactions through the Raft command path
// (encode, decode, apply), as a node does.
type txnStore struct {
	t   *testing.T
	s   *Store
	idx uint64
}

func (ts *txnStore) txn(r *pb.TxnRequest) Result {
	ts.t.Helper()
	c, err := TxnCommand(r)
	if err != nil {
		ts.t.Fatal(err)
	}
	d, err := Decode(c.Encode())
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.idx++
	return ts.s.Apply(ts.idx, d)
}

func putOp(k, v string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte(v), PrevKv: true}}}
}

func delOp(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end), PrevKv: true}}}
}

func rangeOp(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func modIs(k string, rev int64) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_ModRevision{ModRevision: rev}}
}

func keys(r *pb.RangeResponse) string {
	var b bytes.Buffer
	for _, kv := range r.Kvs {
		fmt.Fprintf(&b, "%s=%s@%d/%d/v%d ", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	return b.String()
}

func TestEtcdPutRangeAndRevisions(t *testing.T) {
	ts := &txnStore{t: t, s: New()}
	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", "4"}} {
		if r := ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp(kv[0], kv[1])}}); r.Status != Applied || r.TxnErr != nil {
			t.Fatalf("put %v: %+v", kv, r)
		}
	}
	all, err := ts.s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	// a was created at 1 and changed at 3 (its second version).
	if got, want := keys(all), "a=3@1/3/v2 b=2@2/2/v1 c=4@4/4/v1 "; got != want || all.Count != 3 || all.Header.Revision != 4 {
		t.Fatalf("all keys: %q count %d rev %d, want %q", got, all.Count, all.Header.Revision, want)
	}
	lim, _ := ts.s.Range(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), Limit: 1})
	if keys(lim) != "a=3@1/3/v2 " || !lim.More || lim.Count != 2 {
		t.Fatalf("[a, c) limit 1: %q more %v count %d", keys(lim), lim.More, lim.Count)
	}
	byMod, _ := ts.s.Range(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, SortTarget: pb.RangeRequest_MOD, SortOrder: pb.RangeRequest_DESCEND, Limit: 2, KeysOnly: true})
	if got := keys(byMod); got != "c=@4/4/v1 a=@1/3/v2 " || !byMod.More {
		t.Fatalf("newest two, keys only: %q", got)
	}
	filtered, _ := ts.s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, MinCreateRevision: 2, MaxModRevision: 3})
	if got := keys(filtered); got != "b=2@2/2/v1 " {
		t.Fatalf("created ≥ 2 and changed ≤ 3: %q", got)
	}
	count, _ := ts.s.Range(&pb.RangeRequest{Key: []byte("b"), RangeEnd: []byte{0}, CountOnly: true})
	if count.Count != 2 || len(count.Kvs) != 0 {
		t.Fatalf("count only: %d %d", count.Count, len(count.Kvs))
	}
	if _, err := ts.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 5}); !errors.Is(err, ErrFutureRevision) {
		t.Fatalf("future revision: %v", err)
	}
	if _, err := ts.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 3}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("old revision: %v", err)
	}
	if r, err := ts.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 4}); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("current revision: %v %v", r, err)
	}
	for _, bad := range []*pb.RangeRequest{{}, {Key: []byte("a"), SortOrder: 9}, {Key: []byte("a"), SortTarget: 9}, {Key: []byte("a"), Limit: -1}} {
		if _, err := ts.s.Range(bad); err == nil {
			t.Fatalf("range %v accepted", bad)
		}
	}
}

func TestEtcdTxnCompareAndSwap(t *testing.T) {
	ts := &txnStore{t: t, s: New()}
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("k", "v1")}}) // rev 1
	// A CAS on the right mod revision takes the success branch; its put
	// answers with the previous value.
	r := ts.txn(&pb.TxnRequest{Compare: []*pb.Compare{modIs("k", 1)}, Success: []*pb.RequestOp{putOp("k", "v2")}, Failure: []*pb.RequestOp{rangeOp("k", "")}})
	if !r.Txn.Succeeded || string(r.Txn.Responses[0].GetResponsePut().PrevKv.Value) != "v1" || r.Revision != 2 || r.Txn.Header.Revision != 2 {
		t.Fatalf("CAS: %+v", r.Txn)
	}
	// The same CAS again fails, reads the key in its failure branch and
	// changes nothing.
	r = ts.txn(&pb.TxnRequest{Compare: []*pb.Compare{modIs("k", 1)}, Success: []*pb.RequestOp{putOp("k", "v3")}, Failure: []*pb.RequestOp{rangeOp("k", "")}})
	if r.Txn.Succeeded || keys(r.Txn.Responses[0].GetResponseRange()) != "k=v2@1/2/v2 " || ts.s.Revision() != 2 {
		t.Fatalf("stale CAS: %+v, revision %d", r.Txn, ts.s.Revision())
	}
	// An absent key has version 0 (create-if-absent) and no value.
	absent := &pb.Compare{Key: []byte("new"), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Version{Version: 0}}
	if r := ts.txn(&pb.TxnRequest{Compare: []*pb.Compare{absent}, Success: []*pb.RequestOp{putOp("new", "x")}}); !r.Txn.Succeeded {
		t.Fatal("version 0 of an absent key")
	}
	valueIsEmpty := &pb.Compare{Key: []byte("none"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{}}
	if r := ts.txn(&pb.TxnRequest{Compare: []*pb.Compare{valueIsEmpty}}); r.Txn.Succeeded {
		t.Fatal("a value compare on an absent key held")
	}
	// A compare over a range holds only if it holds for every key.
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("p/1", "a"), putOp("p/2", "a")}})
	allA := &pb.Compare{Key: []byte("p/"), RangeEnd: []byte("p0"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL, TargetUnion: &pb.Compare_Value{Value: []byte("a")}}
	if r := ts.txn(&pb.TxnRequest{Compare: []*pb.Compare{allA}}); !r.Txn.Succeeded {
		t.Fatal("every key of p/ has value a")
	}
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("p/3", "b")}})
	if r := ts.txn(&pb.TxnRequest{Compare: []*pb.Compare{allA}}); r.Txn.Succeeded {
		t.Fatal("p/3 has value b")
	}
}

// One transaction is one revision, however many keys it writes; a delete
// that deletes nothing is no change.
func TestEtcdTxnRevisionsAndDeletes(t *testing.T) {
	ts := &txnStore{t: t, s: New()}
	r := ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("b", "2"), putOp("c", "3"), rangeOp("a", "z")}})
	if r.Revision != 1 || keys(r.Txn.Responses[3].GetResponseRange()) != "a=1@1/1/v1 b=2@1/1/v1 c=3@1/1/v1 " {
		t.Fatalf("three puts and a read of them: rev %d, %s", r.Revision, keys(r.Txn.Responses[3].GetResponseRange()))
	}
	r = ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("x", "")}})
	if r.Revision != 1 || r.Txn.Responses[0].GetResponseDeleteRange().Deleted != 0 {
		t.Fatalf("deleting nothing: %+v", r)
	}
	r = ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{delOp("a", "c")}})
	dr := r.Txn.Responses[0].GetResponseDeleteRange()
	if r.Revision != 2 || dr.Deleted != 2 || len(dr.PrevKvs) != 2 || string(dr.PrevKvs[1].Key) != "b" || ts.s.Len() != 1 {
		t.Fatalf("delete [a, c): rev %d %+v, %d keys left", r.Revision, dr, ts.s.Len())
	}
	// A key deleted and put again starts over at version 1.
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "again")}})
	got, _ := ts.s.Range(&pb.RangeRequest{Key: []byte("a")})
	if keys(got) != "a=again@3/3/v1 " {
		t.Fatalf("recreated: %s", keys(got))
	}
}

// A transaction refused by a check changes nothing at all, even when its
// first operations were fine.
func TestEtcdTxnRefusedWhole(t *testing.T) {
	ts := &txnStore{t: t, s: New()}
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1")}})
	keep := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("missing"), IgnoreValue: true}}}
	nested := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "x")}}}}
	deep := &pb.TxnRequest{}
	for i := 0; i < MaxTxnDepth+1; i++ {
		deep = &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: deep}}}}
	}
	many := &pb.TxnRequest{}
	for i := 0; i <= MaxTxnOps; i++ {
		many.Success = append(many.Success, rangeOp("a", ""))
	}
	for name, c := range map[string]struct {
		r    *pb.TxnRequest
		want error
	}{
		"ignore_value on a missing key": {&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "2"), keep}}, ErrKeyNotFound},
		"a key put twice":               {&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "2"), putOp("b", "3")}}, ErrDuplicateKey},
		"a key put and deleted":         {&pb.TxnRequest{Success: []*pb.RequestOp{putOp("b", "2"), delOp("a", "z")}}, ErrDuplicateKey},
		"a key put here and nested":     {&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "2"), nested}}, ErrDuplicateKey},
		"a lease":                       {&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Lease: 7}}}}}, ErrLease},
		"an empty key":                  {&pb.TxnRequest{Success: []*pb.RequestOp{putOp("", "2")}}, ErrEmptyKey},
		"an operation with no request":  {&pb.TxnRequest{Success: []*pb.RequestOp{{}}}, ErrBadRequest},
		"a compare target out of range": {&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: 42}}}, ErrBadRequest},
		"too deep":                      {deep, ErrTooManyOps},
		"too many operations":           {many, ErrTooManyOps},
	} {
		r := ts.txn(c.r)
		if !errors.Is(r.TxnErr, c.want) || r.Txn != nil || ts.s.Revision() != 1 || ts.s.Len() != 1 {
			t.Errorf("%s: %v (want %v), revision %d, %d keys", name, r.TxnErr, c.want, ts.s.Revision(), ts.s.Len())
		}
	}
	// The two branches of a nested transaction are alternatives: both may
	// write the same key.
	alt := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Compare: []*pb.Compare{modIs("a", 1)}, Success: []*pb.RequestOp{putOp("b", "s")}, Failure: []*pb.RequestOp{putOp("b", "f")}}}}
	if r := ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{alt}}); r.TxnErr != nil || r.Revision != 2 {
		t.Fatalf("alternatives: %v", r.TxnErr)
	}
	if v, _, _ := ts.s.Get([]byte("b")); string(v) != "s" {
		t.Fatalf("nested success branch wrote %q", v)
	}
}

// Nested transactions choose their branch on the state before the outer
// transaction, as etcd does: a put earlier in the same transaction does
// not change a nested compare.
func TestEtcdNestedTxnDecidesOnThePriorState(t *testing.T) {
	ts := &txnStore{t: t, s: New()}
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1")}})
	nested := &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
		Compare: []*pb.Compare{modIs("a", 1)}, Success: []*pb.RequestOp{putOp("saw", "old")}, Failure: []*pb.RequestOp{putOp("saw", "new")},
	}}}
	r := ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "2"), nested}})
	if r.TxnErr != nil || !r.Txn.Responses[1].GetResponseTxn().Succeeded {
		t.Fatalf("nested: %v %+v", r.TxnErr, r.Txn)
	}
	if v, _, _ := ts.s.Get([]byte("saw")); string(v) != "old" {
		t.Fatalf("the nested compare saw %q", v)
	}
}

// The tree, the revisions and versions survive a snapshot, and a clone
// does not see later writes.
func TestSnapshotKeepsVersionsAndCloneIsolates(t *testing.T) {
	ts := &txnStore{t: t, s: New()}
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("b", "1")}})
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "2")}})
	clone := ts.s.Clone()
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "3"), delOp("b", "")}})
	restored, err := Restore(clone.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := restored.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if keys(got) != "a=2@1/2/v2 b=1@1/1/v1 " || restored.Revision() != 2 {
		t.Fatalf("clone after later writes: %s rev %d", keys(got), restored.Revision())
	}
	now, _ := ts.s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if keys(now) != "a=3@1/3/v3 " {
		t.Fatalf("store: %s", keys(now))
	}
	if !bytes.Equal(clone.Snapshot(), restored.Snapshot()) {
		t.Fatal("snapshot of a restored store differs")
	}
	if _, err := Decode(Command{Op: OpTxn, Value: []byte{}, IfRevision: Unconditional, Client: 3, Seq: 1}.Encode()); err == nil {
		t.Fatal("a transaction with a session decoded")
	}
}

// A view answers from the state when it was taken, whatever is applied
// to the store afterwards.
func TestViewIsTheStateWhenTaken(t *testing.T) {
	ts := &txnStore{t: t, s: New()}
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "1"), putOp("b", "1")}})
	view := ts.s.View()
	ts.txn(&pb.TxnRequest{Success: []*pb.RequestOp{putOp("a", "2"), delOp("b", ""), putOp("c", "1")}})
	got, err := view.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if err != nil || keys(got) != "a=1@1/1/v1 b=1@1/1/v1 " || got.Header.Revision != 1 {
		t.Fatalf("view: %s %v", keys(got), err)
	}
	now, _ := ts.s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
	if keys(now) != "a=2@1/2/v2 c=1@2/2/v1 " {
		t.Fatalf("store: %s", keys(now))
	}
}

// A snapshot of the older format (no create revisions or versions) is
// refused by name, not misread.
func TestOldSnapshotRefused(t *testing.T) {
	s := New()
	s.Apply(1, put("a", "1", Unconditional))
	snap := s.Snapshot()
	if _, err := Restore(snap[len(snapshotMagic):]); !errors.Is(err, ErrOldSnapshot) {
		t.Fatalf("a snapshot without the format's mark: %v", err)
	}
	if r, err := Restore(snap); err != nil || r.Len() != 1 {
		t.Fatalf("restore: %v", err)
	}
}
