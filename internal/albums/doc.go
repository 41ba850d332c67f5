// Package albums is an album store: metadata in SQL, cover images in a
// blob store (internal/platform/blob: a local directory or S3), likes and
// dislikes accepted at once and counted asynchronously.
//
// Two faces serve one store: the native API under api/v1, and under
// classic/ the course assignment's Album Store API (classic.go), whose
// generated clients send the profile as their model's toString and expect
// every value back as a string.
//
// Reads are cache-aside (albums are immutable, so a cached album is never
// stale, and the read path keeps serving cached albums while the database
// is down). Images are streamed with http.ServeContent over a seekable
// blob, so ETag, Range and conditional requests work on both engines.
//
// An upload writes the image before the row, so a crash between the two
// leaves only garbage (an image no album points at), which the collector
// in orphans.go deletes after a grace period; an album never points at a
// missing image.
//
// A review gets a Snowflake ID and is published to the broker; 202 means
// the broker holds it. A consumer-group member applies reviews in batches:
// in one transaction it skips the review IDs already applied, records the
// new ones and adds the counts, and it acks after the commit — at-least-once
// delivery, exactly-once counting. Publishing goes through a circuit
// breaker (internal/platform/resilience): when the broker is down, reviews
// get 503 with Retry-After at once instead of piling up, and the breaker
// closes again when the broker returns. Every database call has a
// deadline, a bulkhead and a breaker of its own.
package albums
