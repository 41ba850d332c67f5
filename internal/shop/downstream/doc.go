// Package downstream simulates the two services the shop's checkout calls
// — inventory reservation and payment — with the faults real ones have:
// latency, failures that may or may not have done their work (a lost
// response), and stalls. It is a test double and a teaching device, not
// part of the shop: the shop reaches it over HTTP (`scalelab shop
// downstream` on its own port, its control API behind the admin token) or,
// with no --downstream URL, in the same process through InProcess, which
// binds no port. The wire types (LineItem, ReserveRequest, ChargeRequest,
// Payment) are the contract the shop's client speaks.
package downstream
