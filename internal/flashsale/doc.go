// Package flashsale is a flash sale: many buyers at once for a few units,
// built twice so that the two architectures can be compared under the
// same spike, and built so that neither oversells, undersells or loses an
// order it acknowledged.
//
// Sync mode (--mode sync). The order is placed inside the request: one
// transaction decrements the sale's row only if a unit is left (UPDATE …
// SET stock_left = stock_left - 1 WHERE … AND stock_left > 0), counts the
// user's orders under that row's lock, and inserts the order as reserved;
// then the payment is taken, and a second transaction marks the order
// paid or releases it (and the unit, on the same row). Every order of a
// sale waits for that one row's lock: the database serialises the spike.
//
// Async mode (--mode async, the default). Admission is an atomic
// check-and-reserve in a gate (gate.go): a Lua script on Redis with
// --cache redis://…, a mutex in process on embedded defaults. It turns
// away the late majority without touching the database. The reservations
// that arrive together go to the gate in one call (reservations.go: one
// script run for the group, each order answered as if alone, in turn).
// An admitted order is written with its outbox event in one SQL
// transaction — a group commit with the others admitted meanwhile
// (recorder.go) — and answered 202 once that transaction has committed;
// the relay (relay.go) publishes the outbox to the orders topic, where
// the processing, notification and analytics groups each get a copy (the
// SNS-to-SQS fan-out; notifications are written in batches). Processing
// is a pool of workers or a function runtime (processor.go), both acking
// only after the order's outcome is committed.
//
// The guarantees, and what makes each hold:
//
//  1. No oversell: a unit is given only by the conditional decrement
//     (sync) or the gate's script, which checks "left <= 0" and the
//     per-user count in the same atomic step (async).
//  2. Nothing acknowledged is lost: a 202 is sent only after the order and
//     its event are committed together, so a crash after it leaves both
//     (the relay publishes whatever is unpublished, again if need be). A
//     failed record that may have committed after all (a commit cut
//     short) keeps its hold; the sweeper decides from SQL, past the
//     deadline, whether it stays.
//  3. No unsold units: a crash between the gate's reservation and the SQL
//     record leaves a hold with no order; nobody was told 202. The
//     sweeper (sweep.go) finds such holds past the deadline, writes a
//     released tombstone under the order's ID — the primary key stops a
//     late insert of the same order — and gives the unit back. A hold
//     whose order SQL released (a crash between the two) is given back
//     too, and one whose order SQL paid is confirmed as sold. The gate
//     keeps by order only the holds in flight (a paid order's unit
//     becomes a count), ordered by time, so a sweep reads the holds past
//     the deadline and nothing else: its cost is the stuck tail of the
//     backlog, not the number of units sold. (A sweep that read every
//     hold and every order's state each second was the largest cost in
//     the API process after 100,000 orders.)
//  4. Paid exactly once: every charge carries the order's idempotency key.
//     An unclear outcome (timeout, 5xx) is resolved by asking the payment
//     service, and if it has no charge, by voiding the key, after which a
//     late retry of the charge is refused; only then is the order
//     released. Reserved orders past the deadline (a dead worker, a stuck
//     message, a crash in sync mode between reserve and pay) go through
//     the same resolution in the sweeper.
//  5. Replays: a repeated Idempotency-Key gets its order back (the unique
//     key on (sale, key) settles concurrent repeats); a refusal is
//     remembered for the last 100,000 keys.
//
// A sale runs in the mode of the process that made it, and a process
// orders, sweeps and settles only its own mode's sales: a sync release
// gives the unit back to the sale's row, an async one to the gate, and
// one process doing the other's would lose it.
//
// The reconciler (GET /api/v1/sales/{id}/reconcile, admin) checks, at
// any moment: sold + reserved + left = stock; orders paid = charges and no
// released order charged; no user over the limit; in async mode, the gate
// and SQL agree on who holds a unit and the gate's units sold are SQL's
// orders paid.
//
// What the gate on embedded defaults cannot do: it lives in one process,
// so several API processes need the Redis gate. After a restart it is
// opened again from the orders SQL holds. A Redis that loses its data
// (no AOF) while a sale runs is opened again the same way, which can give
// out again units whose orders were admitted but not yet recorded at that
// moment: run Redis with appendonly for a sale that must survive a Redis
// restart.
package flashsale
