// Package feed is the social news feed: users follow users, post, like,
// comment and share, and each reads a home timeline built by fan-out on
// write, on read, or both (package timeline decides which, per author and
// reader, and merges the result).
//
// # Tiers
//
// The storage tier is the SQL store (store.go): users with their counters,
// the follow graph indexed both ways (by follower for a read's pulls, by
// followee for a post's fan-out), posts, likes and comments. Counters move
// in the transaction of the action they count, and a repeated follow or
// like changes nothing (the primary key refuses it, and the counter moves
// only when a row did). A deleted post keeps its row, marked, so that a
// timeline entry still pointing at it is recognised and dropped at read.
//
// What is here so far: the storage tier and the timeline logic. The
// caches, the fan-out workers, the API, the web app, the console page and
// the experiment are not built yet.
package feed
