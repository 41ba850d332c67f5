// Package autoscale holds the autoscaler's decision: how many copies of a
// backend should run, from the metric they report and the clock. It is
// the Kubernetes Horizontal Pod Autoscaler's rule, as a pure function of
// its inputs (Decider), so that every case — tolerance, stabilisation,
// cool-down, bounds, a missing metric — is tested without a process.
//
// The rule: desired = ceil(current × metric / target), where metric is
// the mean over the running copies (requests in flight per copy, CPU
// share, requests per second per copy, p99). Within the tolerance
// (|metric/target − 1| ≤ 10 %) nothing changes, so noise does not resize
// the fleet. Scaling up acts at once; scaling down takes the highest
// recommendation of the stabilisation window (HPA's default: 5 minutes),
// so a dip does not remove copies that the next burst needs. After any
// change the decider holds for the cool-down: the new copies must start
// and their metric settle before it is read again. The result is clamped
// to [Min, Max]. A missing metric (NaN: no copy answered its scrape)
// changes nothing.
package autoscale
