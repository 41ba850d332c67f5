package console

import (
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// OwnMetric is one series of a system's own metrics (its counters and
// gauges, and its histograms' counts), shown on its card: the live state
// every system exports, with no code in the console for any one of them.
type OwnMetric struct {
	Name   string  `json:"name"` // without the scalelab_<system>_ prefix
	Labels string  `json:"labels,omitempty"`
	Value  float64 `json:"value"`
	Rate   float64 `json:"rate"` // per second over the last sample, for counters
	Kind   string  `json:"kind"` // counter, gauge, histogram (its count)
}

// maxOwn bounds the series one card shows.
const maxOwn = 40

// ownMetrics reads every system's own series from the registry: the
// families named scalelab_<system>_…, and the shared ones (breakers,
// dependency calls) whose system label is the system's.
func ownMetrics(g prometheus.Gatherer, systems []string) map[string][]OwnMetric {
	out := map[string][]OwnMetric{}
	if g == nil {
		return out
	}
	families, err := g.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		name := f.GetName()
		if strings.HasPrefix(name, "scalelab_http_") || !strings.HasPrefix(name, "scalelab_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			system := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "system" {
					system = l.GetValue()
					continue
				}
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			short := ""
			for _, s := range systems {
				if p := "scalelab_" + s + "_"; strings.HasPrefix(name, p) {
					system, short = s, strings.TrimPrefix(name, p)
				}
			}
			if system == "" {
				continue
			}
			if short == "" {
				short = strings.TrimPrefix(name, "scalelab_")
			}
			om := OwnMetric{Name: short, Labels: strings.Join(labels, ",")}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				om.Kind, om.Value = "counter", m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				om.Kind, om.Value = "gauge", m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				om.Kind, om.Value = "histogram", float64(m.GetHistogram().GetSampleCount())
			default:
				continue
			}
			if len(out[system]) < maxOwn {
				out[system] = append(out[system], om)
			}
		}
	}
	for _, ms := range out {
		sort.Slice(ms, func(i, j int) bool { return ms[i].Name+ms[i].Labels < ms[j].Name+ms[j].Labels })
	}
	return out
}

// withRates sets each counter's rate from the previous sample's values.
func withRates(cur, prev map[string][]OwnMetric, dt float64) {
	if dt <= 0 {
		return
	}
	for system, ms := range cur {
		before := map[string]float64{}
		for _, p := range prev[system] {
			before[p.Name+"|"+p.Labels] = p.Value
		}
		for i := range ms {
			if v, ok := before[ms[i].Name+"|"+ms[i].Labels]; ok && ms[i].Kind != "gauge" && ms[i].Value >= v {
				ms[i].Rate = (ms[i].Value - v) / dt
			}
		}
	}
}
