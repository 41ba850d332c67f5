package raftkv

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// The linearizability model: a single key's register with revisions, as
// the store defines them (one store revision, raised by every change; with
// one key the key's ModRevision is the store's revision). Fault tests and
// `scalelab experiment run linearizability` record every client operation — its input, its
// output or "unknown" (a write whose outcome the client never learnt), and
// when it was invoked and answered — and Porcupine searches for an order
// of the operations that this sequential model accepts and that respects
// real time. If there is none, the history is not linearizable.

// OpKind is a checked operation.
type OpKind uint8

// The checked operations.
const (
	OpGet OpKind = iota
	OpPut
	OpCAS
	OpDelete
)

// CheckInput is an operation as invoked.
type CheckInput struct {
	Kind       OpKind
	Value      string
	IfRevision int64 // OpCAS: 0 means "only if absent"
}

// CheckOutput is what the operation returned.
type CheckOutput struct {
	Unknown  bool // a write that timed out: it may or may not have happened
	Found    bool
	Value    string
	Revision int64 // get: the key's ModRevision; writes: the store revision after
	Applied  bool  // CAS: the condition held
	Current  int64 // CAS that failed: the key's ModRevision (0: absent)
}

type registerState struct {
	exists bool
	value  string
	rev    int64
}

// RegisterModel is the sequential specification Porcupine checks against.
var RegisterModel = porcupine.Model{
	Init: func() any { return registerState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(registerState), input.(CheckInput), output.(CheckOutput)
		switch in.Kind {
		case OpGet:
			if !s.exists {
				return !out.Found, s
			}
			return out.Found && out.Value == s.value && out.Revision == s.rev, s
		case OpPut:
			next := registerState{exists: true, value: in.Value, rev: s.rev + 1}
			return out.Unknown || out.Revision == next.rev, next
		case OpDelete:
			if !s.exists {
				return out.Unknown || out.Revision == s.rev, s
			}
			next := registerState{rev: s.rev + 1}
			return out.Unknown || out.Revision == next.rev, next
		case OpCAS:
			held := in.IfRevision == 0 && !s.exists || s.exists && s.rev == in.IfRevision
			if held {
				next := registerState{exists: true, value: in.Value, rev: s.rev + 1}
				return out.Unknown || out.Applied && out.Revision == next.rev, next
			}
			current := int64(0)
			if s.exists {
				current = s.rev
			}
			return out.Unknown || !out.Applied && out.Current == current, s
		}
		return false, s
	},
	Equal: func(a, b any) bool { return a.(registerState) == b.(registerState) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(CheckInput), output.(CheckOutput)
		res := fmt.Sprintf("rev %d", out.Revision)
		if out.Unknown {
			res = "unknown"
		}
		switch in.Kind {
		case OpGet:
			if !out.Found {
				return "get() → absent"
			}
			return fmt.Sprintf("get() → %q @%d", out.Value, out.Revision)
		case OpPut:
			return fmt.Sprintf("put(%q) → %s", in.Value, res)
		case OpDelete:
			return fmt.Sprintf("delete() → %s", res)
		}
		if !out.Unknown && !out.Applied {
			res = fmt.Sprintf("failed, current %d", out.Current)
		}
		return fmt.Sprintf("cas(if %d, %q) → %s", in.IfRevision, in.Value, res)
	},
	DescribeState: func(state any) string {
		s := state.(registerState)
		if !s.exists {
			return fmt.Sprintf("absent @%d", s.rev)
		}
		return fmt.Sprintf("%q @%d", s.value, s.rev)
	},
}
