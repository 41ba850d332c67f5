// Package cache is scalelab's key/value cache block: byte values with a
// per-entry TTL, behind one small interface, on two engines chosen by URL.
//
//	"" or mem://     in-process: otter (S3-FIFO eviction, lock-free reads), bounded by entry count
//	redis://…        Redis, shared by every instance, fronted by a small in-process layer
//
// The Redis engine is two-level. A read first asks a small in-process otter
// cache (default 100,000 entries, 5 s TTL) and only then Redis, so a hot key
// costs no network round trip. The price is staleness across instances:
// after instance A changes or deletes a key, instance B could keep serving
// its local copy. To bound that, every Set and Delete also PUBLISHes the key
// on a Redis channel that all instances subscribe to, and each drops its local
// copy on receipt. A message lost while a subscriber reconnects leaves a stale
// entry for at most the local TTL, which is the guarantee we state: a change
// is visible on every instance within the local TTL, and usually within a
// millisecond.
//
// # ID sets
//
// IDSets (idsets.go) is the second shape a cache takes: a capped set of
// int64 IDs kept highest first, for a home timeline, an author's recent
// posts or the posts a user liked. Each set is a cache of a truth kept
// elsewhere and says how much of it it covers: a set may be missing (never
// built, idle past its TTL, evicted), and below its floor it may be
// incomplete (trimming to the cap dropped the lowest IDs, and raised the
// floor to the highest one dropped). Its owner reads the truth for the rest.
// Add writes only to sets that exist, so writing a post into a million
// followers' timelines costs nothing for the followers nobody has read
// lately. A rebuild is Begin (create the set empty and trusting nothing:
// its floor is the largest int64), read the truth, Fill (add the truth's
// highest IDs, lower the floor): an Add that races the rebuild lands in
// the set and is kept. In-process, a set is a slice under its own lock in
// an otter cache with an idle TTL; in Redis it is a sorted set whose
// members are the IDs as 16 hex digits with equal scores, ordered by their
// bytes (a float64 score is exact only to 53 bits, and a Snowflake ID has
// 63), with a small hash for its floor, changed together by Lua scripts.
//
// Values are returned as stored; callers must not modify them. Keys are
// prefixed with the namespace given to Open, so systems (and tests) sharing
// one Redis never collide.
package cache
