package raftkv

import (
	"errors"
	"testing"
)

func TestCheckReconfig(t *testing.T) {
	set := func(ids ...uint64) map[uint64]bool {
		m := map[uint64]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		voters []uint64
		active map[uint64]bool
		add    bool
		id     uint64
		want   error
	}{
		{"add a 4th to 3 healthy", []uint64{1, 2, 3}, set(1, 2, 3), true, 4, nil},
		{"add a 5th with the 4th absent", []uint64{1, 2, 3, 4}, set(1, 2, 3), true, 5, nil},
		{"add a 6th with two absent", []uint64{1, 2, 3, 4, 5}, set(1, 2, 3), true, 6, ErrUnsafeReconfig},
		{"add with one of 3 down", []uint64{1, 2, 3}, set(1, 2), true, 4, ErrUnsafeReconfig},
		{"add to a single node", []uint64{1}, set(1), true, 2, nil},
		{"add a 3rd while the 2nd is absent", []uint64{1, 2}, set(1), true, 3, ErrUnsafeReconfig},
		{"remove a down node", []uint64{1, 2, 3}, set(1, 2), false, 3, nil},
		{"remove a live node, one down", []uint64{1, 2, 3}, set(1, 2), false, 2, ErrUnsafeReconfig},
		{"remove from 3 healthy", []uint64{1, 2, 3}, set(1, 2, 3), false, 1, nil},
		{"remove a phantom", []uint64{1, 2, 3, 4}, set(1, 2, 3), false, 4, nil},
		{"remove the last voter", []uint64{1}, set(1), false, 1, ErrUnsafeReconfig},
		{"remove a non-member", []uint64{1, 2, 3}, set(1, 2, 3), false, 9, ErrNotMember},
	} {
		err := checkReconfig(tc.voters, tc.active, tc.add, tc.id)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
