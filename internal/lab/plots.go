package lab

import (
	"strings"

	"github.com/scalelab/scalelab/internal/dynamo"
	"github.com/scalelab/scalelab/internal/platform/plot"
)

// The experiments' charts: each draws the figures its lesson is read from.

func concurrencyPlots(counters []counterResult, maps []mapResult) map[string]string {
	lines := func(variants []string, x func(i int) (string, float64, float64), n int) []plot.Line {
		by := map[string]*plot.Line{}
		var out []plot.Line
		for _, v := range variants {
			by[v] = &plot.Line{Name: v}
		}
		for i := 0; i < n; i++ {
			v, g, y := x(i)
			if l := by[v]; l != nil {
				l.X, l.Y = append(l.X, g), append(l.Y, y)
			}
		}
		for _, v := range variants {
			if len(by[v].X) > 0 {
				out = append(out, *by[v])
			}
		}
		return out
	}
	var cv, mv []string
	for _, v := range counterVariants {
		if v.fn != nil {
			cv = append(cv, v.name)
		}
	}
	for _, v := range mapVariants {
		mv = append(mv, v.name)
	}
	return map[string]string{
		"counter-ns-per-op.svg": plot.Chart{Title: "Shared counter: cost of one increment", XLabel: "goroutines", YLabel: "ns per increment", LogX: true, Points: true,
			Lines: lines(cv, func(i int) (string, float64, float64) {
				return counters[i].Variant, float64(counters[i].Goroutines), counters[i].NsPerOp
			}, len(counters))}.SVG(),
		"map-throughput.svg": plot.Chart{Title: "Shared map: operations per second", XLabel: "goroutines", YLabel: "ops/s", LogX: true, Points: true,
			Lines: lines(mv, func(i int) (string, float64, float64) {
				return maps[i].Variant, float64(maps[i].Goroutines), maps[i].OpsPerSec
			}, len(maps))}.SVG(),
	}
}

func consistencyPlots(runs []consistencyRun) map[string]string {
	var groups []string
	stale := make([]float64, len(runs))
	rp99, wp99 := make([]float64, len(runs)), make([]float64, len(runs))
	for i, run := range runs {
		groups = append(groups, run.Store+" "+strings.TrimPrefix(run.Setting, "reads "))
		stale[i] = 100 * float64(run.Stale) / float64(max(run.Ops, 1))
		rp99[i], wp99[i] = run.ReadP99MS, run.WriteP99MS
	}
	return map[string]string{
		"stale-reads.svg": plot.Bars{Title: "Reads that missed the write just acknowledged", YLabel: "% of reads", Groups: groups,
			Series: []string{"stale reads"}, Values: [][]float64{stale}}.SVG(),
		"latency-p99.svg": plot.Bars{Title: "p99 latency, one replica slow", YLabel: "ms", Groups: groups,
			Series: []string{"write p99", "read p99"}, Values: [][]float64{wp99, rp99}}.SVG(),
	}
}

func recoveryPlots(runs []recoveryRun) map[string]string {
	restart := []plot.Line{{Name: "no snapshots"}, {Name: "snapshot every tenth"}}
	disk := []plot.Line{{Name: "no snapshots"}, {Name: "snapshot every tenth"}}
	for _, run := range runs {
		i := 0
		if run.Snapshots {
			i = 1
		}
		restart[i].X, restart[i].Y = append(restart[i].X, float64(run.Entries)), append(restart[i].Y, float64(run.Restart.Microseconds())/1000)
		disk[i].X, disk[i].Y = append(disk[i].X, float64(run.Entries)), append(disk[i].Y, float64(run.LogBytes)/1e6)
	}
	return map[string]string{
		"restart-time.svg": plot.Chart{Title: "raftkv restart until every entry is applied", XLabel: "entries written", YLabel: "ms", LogX: true, Points: true, Lines: restart}.SVG(),
		"disk.svg":         plot.Chart{Title: "raftkv data on disk", XLabel: "entries written", YLabel: "MB", LogX: true, Points: true, Lines: disk}.SVG(),
	}
}

func clientReusePlots(runs []clientRun) map[string]string {
	var groups []string
	rps, p99, cpu := make([]float64, len(runs)), make([]float64, len(runs)), make([]float64, len(runs))
	for i, run := range runs {
		groups = append(groups, run.Name)
		rps[i], p99[i], cpu[i] = run.RPS, run.P99MS, run.CPUPerReq
	}
	return map[string]string{
		"requests-per-second.svg": plot.Bars{Title: "Requests per second", YLabel: "req/s", Groups: groups, Series: []string{"req/s"}, Values: [][]float64{rps}}.SVG(),
		"p99.svg":                 plot.Bars{Title: "p99 latency", YLabel: "ms", Groups: groups, Series: []string{"p99"}, Values: [][]float64{p99}}.SVG(),
		"client-cpu.svg":          plot.Bars{Title: "Client CPU per request", YLabel: "µs", Groups: groups, Series: []string{"CPU"}, Values: [][]float64{cpu}}.SVG(),
	}
}

func capPlots(res dynamo.CAPResult, raft raftCAP) map[string]string {
	phases := []string{"healthy", "partitioned", "healed"}
	share := func(acks, attempts int) float64 {
		if attempts == 0 {
			return 0
		}
		return 100 * float64(acks) / float64(attempts)
	}
	var dyn, raftMin, raftMaj []float64
	for i := range phases {
		if i < len(res.Phases) {
			dyn = append(dyn, share(res.Phases[i].Acks, res.Phases[i].Attempts))
		}
		raftMin = append(raftMin, share(raft.Minority[i].Acks, raft.Minority[i].Attempts))
		raftMaj = append(raftMaj, share(raft.Majority[i].Acks, raft.Majority[i].Attempts))
	}
	var sibs []float64
	for _, p := range res.Phases {
		sibs = append(sibs, float64(p.SiblingReads))
	}
	return map[string]string{
		"acknowledged.svg": plot.Bars{Title: "Writes acknowledged, by phase", YLabel: "% of attempts", Groups: phases,
			Series: []string{"dynamo (both sides)", "raftkv minority side", "raftkv majority side"}, Values: [][]float64{dyn, raftMin, raftMaj}}.SVG(),
		"siblings.svg": plot.Bars{Title: "dynamo reads that returned siblings", YLabel: "reads", Groups: phases[:len(sibs)],
			Series: []string{"sibling reads"}, Values: [][]float64{sibs}}.SVG(),
	}
}
