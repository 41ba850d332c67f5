package lab

import (
	"fmt"
	"sort"
	"time"

	"github.com/scalelab/scalelab/internal/platform/plot"
)

func settingName(s detectionSetting) string { return fmt.Sprintf("%v ×%d", s.Interval, s.Mult) }

// failureDetectionReport states the lesson from the figures.
func failureDetectionReport(opts FailureDetectionOptions, settings []detectionSetting) *Report {
	r := &Report{Experiment: "failure-detection", System: "gossip", Passed: true, Figures: map[string]float64{}}
	missed := 0
	for _, s := range settings {
		key := fmt.Sprintf("p%dms_x%d_", s.Interval.Milliseconds(), s.Mult)
		f := r.Figures
		f[key+"heartbeat_false_deaths"], f[key+"swim_suspicions"] = float64(s.HeartbeatFalseDeaths), float64(s.SWIMSuspicions)
		f[key+"swim_false_deaths"], f[key+"swim_refuted"] = float64(s.SWIMFalseDeaths), float64(s.SWIMRefuted)
		f[key+"suspected_by_slow"] = float64(s.SuspectedBySlow)
		f[key+"heartbeat_detect_ms"], f[key+"swim_detect_ms"], f[key+"swim_suspect_ms"] = median(s.HeartbeatDetectMS), median(s.SWIMDetectMS), median(s.SWIMSuspectMS)
		f[key+"heartbeat_back_ms"], f[key+"swim_back_ms"] = median(s.HeartbeatBackMS), median(s.SWIMBackMS)
		for i := range s.HeartbeatDetectMS {
			if s.HeartbeatDetectMS[i] < 0 || s.SWIMDetectMS[i] < 0 {
				missed++
			}
		}
	}
	if len(settings) == 0 {
		return r
	}
	if missed > 0 {
		r.Passed = false
		r.Lesson = append(r.Lesson, fmt.Sprintf("%d paused-process trials were not declared dead by one of the detectors within the bound: a detector that misses a dead member is broken, whatever it costs.", missed))
	}
	// Fastest and slowest settings by the timeout they imply.
	byTimeout := append([]detectionSetting(nil), settings...)
	sort.SliceStable(byTimeout, func(i, j int) bool {
		return time.Duration(byTimeout[i].Mult)*byTimeout[i].Interval < time.Duration(byTimeout[j].Mult)*byTimeout[j].Interval
	})
	fast, slow := byTimeout[0], byTimeout[len(byTimeout)-1]
	if len(byTimeout) > 1 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("Detection follows the timeout: the heartbeat detector declared the paused process dead in %.0f ms at %s (timeout %v) and %.0f ms at %s (timeout %v); SWIM in %.0f ms and %.0f ms (medians of %d pauses).",
			median(fast.HeartbeatDetectMS), settingName(fast), time.Duration(fast.Mult)*fast.Interval, median(slow.HeartbeatDetectMS), settingName(slow), time.Duration(slow.Mult)*slow.Interval,
			median(fast.SWIMDetectMS), median(slow.SWIMDetectMS), opts.Trials))
	}
	worstGap := opts.SlowBase + opts.Jitter
	var fooled, spared []string
	hbDeaths, swimSus, swimDeaths, refuted := 0, 0, 0, 0
	for _, s := range settings {
		hbDeaths += s.HeartbeatFalseDeaths
		swimSus += s.SWIMSuspicions
		swimDeaths += s.SWIMFalseDeaths
		refuted += s.SWIMRefuted
		if s.HeartbeatFalseDeaths > 0 {
			fooled = append(fooled, fmt.Sprintf("%d at %s", s.HeartbeatFalseDeaths, settingName(s)))
		} else {
			spared = append(spared, settingName(s))
		}
	}
	switch {
	case hbDeaths == 0 && swimSus == 0:
		r.Lesson = append(r.Lesson, fmt.Sprintf("Neither detector was fooled by the slow link (up to %v late each way) in %v per setting: the link was not slow enough for these timeouts — raise --jitter or shorten --intervals to see the cost.", worstGap, opts.Window))
	case hbDeaths > 0:
		l := fmt.Sprintf("The heartbeat detector declared the living slow member dead %d times in all (%s): a heartbeat can arrive up to interval + %v after the one before, and every timeout shorter than that gap is a false death.",
			hbDeaths, joinList(fooled), worstGap)
		if len(spared) > 0 {
			l += fmt.Sprintf(" Longer timeouts (%s) were never fooled — and detected the dead process later.", joinList(spared))
		}
		r.Lesson = append(r.Lesson, l)
	default:
		r.Lesson = append(r.Lesson, fmt.Sprintf("The heartbeat detector was never fooled by the slow link (up to %v late each way): every timeout here was longer than the worst gap between heartbeats.", worstGap))
	}
	if swimSus > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("SWIM suspected the slow member %d times in all (the three observers probe it in turn); it refuted %d suspicions with a higher incarnation, and %d became deaths.", swimSus, refuted, swimDeaths))
	}
	var fewer, more []string
	for _, s := range settings {
		switch {
		case s.SWIMFalseDeaths < s.HeartbeatFalseDeaths:
			fewer = append(fewer, fmt.Sprintf("%s (%d vs %d)", settingName(s), s.SWIMFalseDeaths, s.HeartbeatFalseDeaths))
		case s.SWIMFalseDeaths > s.HeartbeatFalseDeaths:
			more = append(more, fmt.Sprintf("%s (%d vs %d)", settingName(s), s.SWIMFalseDeaths, s.HeartbeatFalseDeaths))
		}
	}
	if len(fewer) > 0 {
		r.Lesson = append(r.Lesson, "SWIM declared the living member dead less often than the heartbeat timeout at "+joinList(fewer)+": a suspicion that the suspect refutes in time is no death.")
	}
	if len(more) > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("SWIM declared the living member dead more often at %s: a refutation must cross the slow link twice (up to %v), and a suspicion timeout that short expires first — the suspicion stage protects only when the suspicion outlasts the slow member's round trip.",
			joinList(more), 2*worstGap))
	}
	// The price of the suspicion stage, at equal settings.
	slower, faster := 0, 0
	for _, s := range settings {
		h, w := median(s.HeartbeatDetectMS), median(s.SWIMDetectMS)
		if h < 0 || w < 0 {
			continue
		}
		if w > h {
			slower++
		} else {
			faster++
		}
	}
	if slower+faster > 0 {
		if slower >= faster {
			r.Lesson = append(r.Lesson, fmt.Sprintf("At the same interval and multiplier SWIM was the slower to declare the paused process dead in %d of %d settings: it probes one member per interval, suspects, and then waits out the suspicion.", slower, slower+faster))
		} else {
			r.Lesson = append(r.Lesson, fmt.Sprintf("At the same interval and multiplier SWIM declared the paused process dead sooner than the heartbeat timeout in %d of %d settings: with enough confirming observers Lifeguard shortens the suspicion to its minimum.", faster, slower+faster))
		}
	}
	return r
}

func joinList(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	out := xs[0]
	for _, x := range xs[1 : len(xs)-1] {
		out += ", " + x
	}
	return out + " and " + xs[len(xs)-1]
}

func failureDetectionPlots(settings []detectionSetting) map[string]string {
	byMult := map[int][]detectionSetting{}
	var mults []int
	for _, s := range settings {
		if byMult[s.Mult] == nil {
			mults = append(mults, s.Mult)
		}
		byMult[s.Mult] = append(byMult[s.Mult], s)
	}
	sort.Ints(mults)
	var detectLines, tradeLines []plot.Line
	for _, m := range mults {
		hb, sw := plot.Line{Name: fmt.Sprintf("heartbeat ×%d", m)}, plot.Line{Name: fmt.Sprintf("SWIM ×%d", m)}
		for _, s := range byMult[m] {
			x := float64(s.Interval.Milliseconds())
			hb.X, hb.Y = append(hb.X, x), append(hb.Y, median(s.HeartbeatDetectMS))
			sw.X, sw.Y = append(sw.X, x), append(sw.Y, median(s.SWIMDetectMS))
		}
		detectLines = append(detectLines, hb, sw)
	}
	// Detection time against false deaths: each setting is a point.
	hbT, swT := plot.Line{Name: "heartbeat"}, plot.Line{Name: "SWIM"}
	sorted := append([]detectionSetting(nil), settings...)
	sort.Slice(sorted, func(i, j int) bool { return median(sorted[i].HeartbeatDetectMS) < median(sorted[j].HeartbeatDetectMS) })
	for _, s := range sorted {
		hbT.X, hbT.Y = append(hbT.X, median(s.HeartbeatDetectMS)), append(hbT.Y, float64(s.HeartbeatFalseDeaths))
	}
	sort.Slice(sorted, func(i, j int) bool { return median(sorted[i].SWIMDetectMS) < median(sorted[j].SWIMDetectMS) })
	for _, s := range sorted {
		swT.X, swT.Y = append(swT.X, median(s.SWIMDetectMS)), append(swT.Y, float64(s.SWIMFalseDeaths))
	}
	tradeLines = []plot.Line{hbT, swT}
	var groups []string
	hbD, swS, swD := make([]float64, len(settings)), make([]float64, len(settings)), make([]float64, len(settings))
	for i, s := range settings {
		groups = append(groups, settingName(s))
		hbD[i], swS[i], swD[i] = float64(s.HeartbeatFalseDeaths), float64(s.SWIMSuspicions), float64(s.SWIMFalseDeaths)
	}
	return map[string]string{
		"detection-time.svg": plot.Chart{Title: "Time to declare a paused process dead (median)", XLabel: "probe / heartbeat interval (ms)", YLabel: "ms",
			LogX: true, Points: true, Lines: detectLines}.SVG(),
		"false-suspicions.svg": plot.Bars{Title: "What the slow but living member cost", YLabel: "count", Groups: groups,
			Series: []string{"heartbeat false deaths", "SWIM suspicions", "SWIM false deaths"}, Values: [][]float64{hbD, swS, swD}}.SVG(),
		"tradeoff.svg": plot.Chart{Title: "Detection time against false deaths, one point per setting", XLabel: "ms to declare the paused process dead", YLabel: "false deaths of the slow member",
			Points: true, Lines: tradeLines}.SVG(),
	}
}
