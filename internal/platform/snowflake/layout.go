package snowflake

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Layout bit widths and limits.
const (
	TimeBits     = 41
	WorkerBits   = 10
	SequenceBits = 12

	MaxWorker   = 1<<WorkerBits - 1   // 1023
	MaxSequence = 1<<SequenceBits - 1 // 4095
	maxMillis   = 1<<TimeBits - 1

	workerShift = SequenceBits
	timeShift   = SequenceBits + WorkerBits
)

// DefaultEpoch is the zero of the time field.
var DefaultEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ID is one Snowflake ID.
type ID int64

// String renders the ID in decimal.
func (id ID) String() string { return strconv.FormatInt(int64(id), 10) }

// Parts is a decoded ID.
type Parts struct {
	Time     time.Time
	Worker   int
	Sequence int
}

// ErrInvalidID is returned for text that is not a valid ID.
var ErrInvalidID = errors.New("snowflake: invalid id")

// Decode splits id into its fields, using the given epoch.
func Decode(id ID, epoch time.Time) (Parts, error) {
	if id < 0 {
		return Parts{}, fmt.Errorf("%w: negative", ErrInvalidID)
	}
	ms := int64(id) >> timeShift
	return Parts{
		Time:     epoch.Add(time.Duration(ms) * time.Millisecond).UTC(),
		Worker:   int(id>>workerShift) & MaxWorker,
		Sequence: int(id) & MaxSequence,
	}, nil
}

// Parse reads a decimal ID.
func Parse(s string) (ID, error) {
	if len(s) == 0 || len(s) > 19 {
		return 0, fmt.Errorf("%w: %q is not a decimal 64-bit ID", ErrInvalidID, truncate(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || s[0] == '+' {
		return 0, fmt.Errorf("%w: %q is not a decimal 64-bit ID", ErrInvalidID, truncate(s))
	}
	return ID(n), nil
}

func compose(ms int64, worker, seq int) ID {
	return ID(ms<<timeShift | int64(worker)<<workerShift | int64(seq))
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// FirstID is the smallest ID any worker can issue in the millisecond of t
// (for an epoch), so that a time range becomes an ID range: IDs issued in
// [from, to] lie in [FirstID(from), FirstID(to+1ms)).
func FirstID(t, epoch time.Time) ID {
	ms := t.Sub(epoch).Milliseconds()
	return compose(min(max(ms, 0), maxMillis), 0, 0)
}
