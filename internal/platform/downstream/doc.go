// Package downstream simulates the services a checkout calls — inventory
// reservation and payment — with the faults real ones have: latency,
// failures that may or may not have done their work (a lost response),
// and stalls. It is a test double and a teaching device shared by the
// systems that pay for things (the shop's checkout, the flash sale's
// orders), part of neither: they reach it over HTTP (`scalelab shop
// downstream` on its own port, its control API behind the admin token) or
// in the same process through InProcess, which binds no port. The wire
// types (LineItem, ReserveRequest, ChargeRequest, Payment) are the
// contract their clients speak.
//
// Payments are idempotent by the Idempotency-Key header, as Stripe's are:
// the same key charges once; GET /payments/{key} says whether it did; and
// POST /payments/{key}/void makes an uncharged key unusable, so a caller
// that gave up on a charge can give the goods back knowing that a late
// retry of it will be refused.
package downstream
