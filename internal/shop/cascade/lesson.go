package cascade

import (
	"fmt"
	"strings"
)

// minStallS and minAfterS are the shortest stall and recovery phases from
// which the report draws a lesson: the stall must last long enough for
// stalled checkouts to pile up, and after it the protected shop needs its
// breaker's delay (5 s) plus the 3 good seconds that count as recovered.
// A shorter run mostly measures the breaker's timing, not the cascade.
const (
	minStallS = 3
	minAfterS = 8
)

// Lesson states what the run's figures show, in sentences that quote
// them — or says that the run was too short or too light to show it. It
// reads only the phase tables, so it is tested on made-up figures.
func Lesson(cfg Config, results []*ModeResult) []string {
	var naive, prot *ModeResult
	for _, r := range results {
		if r.Protect {
			prot = r
		} else {
			naive = r
		}
	}
	if naive == nil || prot == nil {
		return []string{"Only one mode ran: there is nothing to compare."}
	}
	var out []string
	after := cfg.Duration.Seconds() - (cfg.StallAt + cfg.StallFor).Seconds()
	if cfg.StallFor.Seconds() < minStallS || after < minAfterS {
		out = append(out, fmt.Sprintf("This run is too short to read the lesson from: the stall lasted %.0f s and %.0f s followed it "+
			"(at least %d s and %d s are needed). The breaker's timing dominates such a run — for instance, the protected "+
			"shop may show more checkout errors and a later recovery than the naive one. Run with the defaults "+
			"(a 15 s stall in 45 s) to see the cascade.", cfg.StallFor.Seconds(), after, minStallS, minAfterS))
	}
	nb, ns := naive.Phases["catalog/before"], naive.Phases["catalog/stall"]
	pb, ps := prot.Phases["catalog/before"], prot.Phases["catalog/stall"]
	spread := ns.ErrPerS > 0 || ns.OKPerS < 0.8*nb.OKPerS
	held := ps.ErrPerS == 0 && ps.OKPerS >= 0.8*pb.OKPerS
	switch {
	case spread && held:
		out = append(out, fmt.Sprintf("The stall spread without protection: the catalog, which never calls payment, fell from %.1f to %.1f "+
			"successful searches/s with %.1f errors/s (worst p99 %s), because stalled checkouts held the shop's request slots "+
			"(peak %d in flight of --max-in-flight %d). With timeouts, a breaker and a bulkhead on payment, the catalog held "+
			"(%.1f → %.1f/s, no errors, worst p99 %s; peak %d in flight).",
			nb.OKPerS, ns.OKPerS, ns.ErrPerS, msText(ns.P99), naive.PeakIn, cfg.MaxInFlight, pb.OKPerS, ps.OKPerS, msText(ps.P99), prot.PeakIn))
	case !spread:
		out = append(out, fmt.Sprintf("The stall did not spread to the catalog in this run (without protection: %.1f → %.1f searches/s, "+
			"no errors; peak %d in flight of %d): stalled checkouts never filled the shop's request slots. Raise --checkout-rate "+
			"or lower --max-in-flight to see the cascade.", nb.OKPerS, ns.OKPerS, naive.PeakIn, cfg.MaxInFlight))
	default:
		out = append(out, fmt.Sprintf("The catalog suffered in both modes during the stall (without protection %.1f → %.1f/s, "+
			"with it %.1f → %.1f/s, %.1f errors/s): the protection did not contain the stall in this run.",
			nb.OKPerS, ns.OKPerS, pb.OKPerS, ps.OKPerS, ps.ErrPerS))
	}
	nc, pc := naive.Phases["checkout/stall"], prot.Phases["checkout/stall"]
	if pc.ErrPerS > 0 {
		more := ""
		if pc.ErrPerS > nc.ErrPerS {
			more = " More errors with protection is the point: each is an answer in milliseconds, where without it a checkout " +
				"holds a connection until the client gives up (and counts as an error only then)."
		}
		line := fmt.Sprintf("Checkout during the stall failed fast with protection (%.1f errors/s, median latency %s, worst p99 %s).",
			pc.ErrPerS, msText(pc.P50), msText(pc.P99))
		switch {
		case nc.P99 > 10*pc.P99 && nc.P50 < pc.P50:
			line += fmt.Sprintf(" Without it the first checkouts hung until the client gave up (worst p99 %s) and held the shop's request slots; "+
				"the ones after them were shed by the full shop (median latency %s, %.1f errors/s): fast refusals, but of everything, not only of checkout.",
				msText(nc.P99), msText(nc.P50), nc.ErrPerS)
		case nc.P99 > 10*pc.P99:
			line += fmt.Sprintf(" Without it checkouts hung (median latency %s, worst p99 %s, %.1f errors/s).", msText(nc.P50), msText(nc.P99), nc.ErrPerS)
		default:
			line += fmt.Sprintf(" Without it: %.1f errors/s, median latency %s, worst p99 %s — no slower than with it in this run.", nc.ErrPerS, msText(nc.P50), msText(nc.P99))
		}
		out = append(out, line+more)
	}
	rec := func(r *ModeResult) string {
		if r.RecoveryS < 0 {
			return "not within the run"
		}
		return fmt.Sprintf("%.0f s after the heal", r.RecoveryS)
	}
	line := fmt.Sprintf("Checkout recovered %s with protection, %s without.", rec(prot), rec(naive))
	if prot.RecoveryS > naive.RecoveryS && naive.RecoveryS >= 0 {
		line += " The protected shop waits for its breaker: it refuses payment calls until the breaker's delay has passed " +
			"and a probe succeeds, so its recovery lags the heal by up to that delay; the naive shop resumes at once " +
			"— if it survived the stall."
	}
	out = append(out, line)
	return out
}

func writeLesson(w interface{ Write([]byte) (int, error) }, cfg Config, results []*ModeResult) {
	fmt.Fprintln(w, "## What this run shows")
	fmt.Fprintln(w)
	for _, l := range Lesson(cfg, results) {
		fmt.Fprintln(w, strings.TrimSpace(l))
		fmt.Fprintln(w)
	}
}
