// Package feed is the social news feed: users follow users, post, like,
// comment and share, and each reads a home timeline built by fan-out on
// write (push), on read (pull), or both (hybrid). Package timeline decides
// which, per author and reader, and merges the result; this package is the
// tiers around it.
//
// # Tiers
//
// API (http.go): REST under /api/v1, a live stream of new posts
// (server-sent events, live.go) and the web app (web/, served at /app/).
// Business logic (write.go, read.go, fanout.go). Caches (caches.go).
// Storage (store.go): the SQL tables are the truth every cache is rebuilt
// from. Counters move in the transaction of the action they count, and a
// repeated follow or like changes nothing. A deleted post keeps its row,
// marked, so that a timeline entry still pointing at it is recognised and
// dropped at read.
//
// # Caches, each with its own policy
//
//   - Home timelines: an ID set per reader (cache.IDSets) holding the post
//     IDs pushed to it, capped at 800 (older pages come from the store),
//     dropped after 72 h unread. Fan-out writes only into timelines that
//     exist, so an inactive reader costs no writes; on its first read it
//     is rebuilt from the store (begin, read, fill: a fan-out racing the
//     rebuild lands in it and is kept).
//   - Each author's recent post IDs: an ID set, written on post and
//     delete; the pull path's source, so a celebrity's posts are read from
//     memory by every reader who pulls them, not from the store.
//   - The posts each user liked: an ID set, to mark a page's items.
//   - Posts, users (with their counters) and follow lists: values in a
//     small binary encoding (codec.go: a profile at 5,000 reads/s put 46 %
//     of the CPU in decoding them as JSON), deleted when they change, and
//     again a second later, so that a read that raced the change cannot
//     leave the old value for the TTL.
//   - Hybrid splits: which followees a hybrid reader pulls, cached per
//     reader and tagged with its mode and the celebrity epoch, which moves
//     whenever any account crosses the threshold (read.go, pulledFrom).
//
// Every cache runs in process or in Redis (one --cache URL). A cache that
// fails is read around: the store answers.
//
// # Fan-out
//
// A post is stored, added to its author's recent posts, and a plan job is
// queued on the broker. A worker pages the author's followers (only those
// whose pair is pushed: for a celebrity in hybrid mode that is the few who
// chose push, found through an index) and queues one batch job per
// BatchSize followers; batch jobs write the post ID into those followers'
// timelines, in parallel across workers and instances. A job is
// acknowledged after its writes, and every write is idempotent, so a
// worker that dies loses nothing (its job is redelivered) and a redone job
// duplicates nothing. A delete fans out the same way to take the ID back;
// reads drop a deleted post at once anyway.
//
// # Reads
//
// A read takes the reader's followees and their follower counts, splits
// them into pushed and pulled (timeline.Policy), reads a page of the cached
// timeline and of each pulled author's recent posts below the cursor,
// merges them (timeline.Merge), and hydrates the posts, dropping deleted
// ones and authors no longer followed. One's own posts are always pulled.
// Where a cached set stops covering its truth (below its floor), the store
// answers for the rest, so paging never ends early.
//
// # Guarantees
//
// Every reader's timeline converges to the posts of those it follows, with
// none missing or duplicated, in every mode (tested against a ground truth
// over random operations). A pushed post reaches a reader when its batch is
// written; a pulled one at once. A follow shows at once (the author's
// recent posts are written into the reader's timeline), an unfollow too.
// An author who drops under the celebrity threshold is pushed from then
// on: a rebalance job writes its recent posts into its followers'
// timelines, and until it has run those readers may miss them.
package feed
