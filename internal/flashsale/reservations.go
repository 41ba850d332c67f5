package flashsale

import "context"

// reservations sends the gate the reservations that arrive together in
// groups (groupCommit): one ReserveBatch per sale in the group, each
// request answered from its own place in the batch. On Redis that is one
// script call and one round trip for the group instead of one per order;
// the profile of the async API under a spike had the per-order script
// call as its largest single cost, and Redis's share of the machine
// with it. The gate's answers are the same as one call per order in the
// group's order.
type reservations = groupCommit[saleReservation, Admission]

type saleReservation struct {
	saleID int64
	Reservation
}

func newReservations(g Gate) *reservations {
	return newGroupCommit("gate's answer", maxBatch, func(ctx context.Context, rs []saleReservation) []groupResult[Admission] {
		out := make([]groupResult[Admission], len(rs))
		bySale := map[int64][]int{} // a group usually holds one sale
		for i, r := range rs {
			bySale[r.saleID] = append(bySale[r.saleID], i)
		}
		for saleID, idx := range bySale {
			batch := make([]Reservation, len(idx))
			for j, i := range idx {
				batch[j] = rs[i].Reservation
			}
			adm, err := g.ReserveBatch(ctx, saleID, batch)
			for j, i := range idx {
				if err != nil {
					out[i].err = err
				} else {
					out[i].out = adm[j]
				}
			}
		}
		return out
	})
}
