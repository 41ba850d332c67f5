// Package snowflake issues 64-bit, time-ordered, unique IDs without
// coordination, in Twitter's Snowflake layout:
//
//	 1 bit   unused (IDs stay positive as int64)
//	41 bits  milliseconds since the epoch (default 2024-01-01T00:00:00Z; 69 years of range)
//	10 bits  worker ID, 0–1023
//	12 bits  sequence within the millisecond, 0–4095
//
// IDs from one Generator are strictly increasing; IDs from different workers
// are ordered by millisecond (k-sorted), and never equal as long as no two
// live generators share a worker ID. The ceiling is 4,096 IDs per millisecond
// per worker, 4,096,000 per second: when the sequence runs out, Next waits
// for the next millisecond.
//
// Clocks go backwards (NTP slews and steps, VM migrations). A small backward
// step, up to Config.MaxBackward (default 10 ms), is waited out, because the
// alternative is an error for a glitch that heals by itself. A larger one
// returns ErrClockBackwards and counts it (BackwardErrors): issuing an ID
// from the past could duplicate one already given out, and we would rather
// fail loudly than ever duplicate.
//
// The generator uses a mutex, not a compare-and-swap loop. Both were
// measured (BenchmarkGenerator, docs/idgen.md): at 1 and 8 goroutines both
// run into the layout's own ceiling of 4,096 IDs per millisecond, so the
// choice is decided by simplicity, and the mutex version can sleep out a
// backward clock step without burning a CPU.
//
// Worker IDs. A fixed --worker-id is right for a static fleet; for anything
// that scales, Lease claims a free worker ID in the SQL store or in Redis
// with a TTL, renews it every TTL/3, and if a renewal fails until the lease
// could have expired, the generator stops issuing (ErrLeaseLost) before
// another server could claim the same ID. This relies on clocks across
// servers agreeing within the safety margin (TTL/5).
//
// Base62 (0-9, A-Z, a-z) turns an ID into a short URL-safe string of at most
// 11 characters; the shortener uses it for its codes.
package snowflake
