// Package timeline is the news feed's pure logic: which (author, reader)
// pairs are served by fan-out on write and which by fan-out on read, and
// the merge that turns a reader's cached timeline and the recent posts of
// the authors it pulls from into one page of a home timeline.
//
// # Push, pull, hybrid
//
// A post reaches a reader's home timeline one of two ways. Push (fan-out
// on write): when the author posts, the post's ID is written into every
// follower's cached timeline — reads are one cache read, but a post costs
// one write per follower, and an account with millions of followers turns
// one post into millions of writes and minutes of delay (Twitter's 2013
// numbers: 300k timeline reads/s against 4.6k writes/s; a 31M-follower
// post took up to 5 minutes). Pull (fan-out on read): the reader's
// timeline is merged at read time from the recent posts of everyone it
// follows — a post costs nothing, a read costs one lookup per followee.
//
// The choice is per (author, reader) pair, and that is the whole design
// (Silberstein et al., "Feeding Frenzy", SIGMOD 2010: push a pair when the
// author posts less often than the reader reads, pull it otherwise).
// Decide makes it from the deployment's mode, the reader's own mode if it
// has one, and the author's follower count: hybrid pushes ordinary
// authors and pulls those above a threshold (the celebrities), whose
// posts are few and whose followers are many. Fan-out on write goes to
// exactly the followers whose pair is push; a read pulls from exactly the
// followees whose pair is pull: every pair is served one way, so nothing
// is missed, and Merge drops the duplicates a changed decision could
// leave (a pair pushed yesterday and pulled today).
//
// # Pages and cursors
//
// Post IDs are time-ordered (snowflakes), so a timeline is posts by
// descending ID and a cursor is the last ID a page showed: the next page
// is the IDs below it. A cursor is stable when new posts arrive (they are
// above it) and when posts are deleted (they just are not there).
package timeline
