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
// Values are returned as stored; callers must not modify them. Keys are
// prefixed with the namespace given to Open, so systems (and tests) sharing
// one Redis never collide.
package cache
