package dynamo

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats counts the node's repair work since it started (GET /cluster, and
// Prometheus as dynamo_*_total{node=…}).
type Stats struct {
	HintsStored       uint64 `json:"hints_stored"`
	HintsDelivered    uint64 `json:"hints_delivered"`
	ReadRepairs       uint64 `json:"read_repairs"`
	AntiEntropyKeys   uint64 `json:"anti_entropy_keys"`
	HandedOffKeys     uint64 `json:"handed_off_keys"`
	TombstonesReaped  uint64 `json:"tombstones_reaped"`
	QuorumFailures    uint64 `json:"quorum_failures"`
	ForwardedRequests uint64 `json:"forwarded_requests"`
}

type metrics struct {
	hintsStored, hintsDelivered, readRepairs, aeKeys, handedOff, reaped, quorumFailures, forwarded atomic.Uint64
	contextsRefused, contextsClamped, limitsRefused                                                atomic.Uint64
}

func newMetrics(node string, reg prometheus.Registerer) *metrics {
	m := &metrics{}
	if reg == nil {
		return m
	}
	for _, c := range []struct {
		name, help string
		v          *atomic.Uint64
	}{
		{"dynamo_hints_stored_total", "Writes stored as hints for a node that was down.", &m.hintsStored},
		{"dynamo_hints_delivered_total", "Hinted writes handed off to their owner.", &m.hintsDelivered},
		{"dynamo_read_repairs_total", "Replicas sent newer versions after a read.", &m.readRepairs},
		{"dynamo_anti_entropy_keys_total", "Keys exchanged by Merkle-tree anti-entropy.", &m.aeKeys},
		{"dynamo_handed_off_keys_total", "Keys moved to their new owners after a ring change.", &m.handedOff},
		{"dynamo_tombstones_reaped_total", "Tombstones deleted after the grace period.", &m.reaped},
		{"dynamo_quorum_failures_total", "Requests that did not reach R or W replicas.", &m.quorumFailures},
		{"dynamo_forwarded_requests_total", "Writes forwarded to a node of the key's preference list.", &m.forwarded},
		{"dynamo_contexts_refused_total", "Writes refused: their causal context claimed writes never issued.", &m.contextsRefused},
		{"dynamo_contexts_clamped_total", "Context entries no node could vouch for, clamped to what the replica knew.", &m.contextsClamped},
		{"dynamo_limit_refusals_total", "Writes refused: the key would pass its sibling or byte limit.", &m.limitsRefused},
	} {
		v := c.v
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: c.name, Help: c.help, ConstLabels: prometheus.Labels{"node": node},
		}, func() float64 { return float64(v.Load()) }))
	}
	return m
}

func (m *metrics) snapshot() Stats {
	return Stats{
		HintsStored: m.hintsStored.Load(), HintsDelivered: m.hintsDelivered.Load(), ReadRepairs: m.readRepairs.Load(),
		AntiEntropyKeys: m.aeKeys.Load(), HandedOffKeys: m.handedOff.Load(), TombstonesReaped: m.reaped.Load(),
		QuorumFailures: m.quorumFailures.Load(), ForwardedRequests: m.forwarded.Load(),
	}
}
