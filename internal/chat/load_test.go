package chat

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
)

// The load generator's own bookkeeping — the window, the writes it groups,
// the pacing — must count every message once: a run against a real server
// acks each message sent and sees it reach every member of its room.
func TestLoadRunCountsEveryMessage(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	base := "ws" + strings.TrimPrefix(inst.url, "http")
	for _, tc := range []struct {
		name string
		rate float64
		msgs int
	}{{"closed loop", 0, 3000}, {"paced", 2000, 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := RunLoad(ctx, LoadPlan{Servers: []string{base}, Connections: 6, Rooms: 3,
				Messages: tc.msgs, Warmup: 300, Window: 16, Rate: tc.rate, Seed: 1}, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if res.Sent != int64(tc.msgs) || res.Acked != int64(tc.msgs) || res.Errors != 0 {
				t.Fatalf("sent %d acked %d errors %d, want %d acked", res.Sent, res.Acked, res.Errors, tc.msgs)
			}
			if res.Expected != 2*int64(tc.msgs) || res.Received != res.Expected {
				t.Fatalf("received %d room messages, expected %d (2 members per room × %d)", res.Received, res.Expected, tc.msgs)
			}
			seen := map[int64]bool{}
			for _, id := range res.AckedIDs {
				if id == 0 || seen[id] {
					t.Fatalf("acked ID %d missing or twice", id)
				}
				seen[id] = true
			}
			if tc.rate > 0 {
				// Never ahead of the schedule (1 % slack for the clock);
				// behind it only loosely bounded: CI shares the cores.
				schedule := float64(tc.msgs-1) / tc.rate
				if el := res.Elapsed.Seconds(); el < 0.99*schedule || el > 20 {
					t.Fatalf("paced run of %d messages at %.0f/s took %.3fs; the schedule is %.3fs", tc.msgs, tc.rate, el, schedule)
				}
			}
			if n := res.Ack.TotalCount(); n != int64(tc.msgs) {
				t.Fatalf("%d ack latencies recorded, want %d", n, tc.msgs)
			}
		})
	}
}

// `scalelab load chat` reports as every load run does: a summary.json that
// `load compare` reads, and k6-style thresholds that fail with exit code 99.
func TestLoadCommandWritesASummaryAndChecksThresholds(t *testing.T) {
	inst := startChat(t, host.Engines{}, testConfig())
	base := "ws" + strings.TrimPrefix(inst.url, "http")
	dir := t.TempDir()
	var out strings.Builder
	p := LoadPlan{Servers: []string{base}, Connections: 4, Rooms: 2, Messages: 400, Warmup: 40, Window: 8, Seed: 1}
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	ok, _ := loadgen.ParseThreshold("errors<1%")
	if err := runLoadCommand(context.Background(), p, "", dir, []loadgen.Threshold{ok}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	sum, err := loadgen.ReadSummary(filepath.Join(dir, "summary.json"))
	if err != nil || sum.Requests != 400 || sum.Errors != 0 || sum.Received != 800 || sum.Status["OK"] != 400 || sum.LatencyMS.P99 <= 0 {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	impossible, _ := loadgen.ParseThreshold("p99<1us")
	err = runLoadCommand(context.Background(), p, "", "", []loadgen.Threshold{impossible}, &out)
	var te loadgen.ThresholdError
	if !errors.As(err, &te) || te.ExitCode() != 99 {
		t.Fatalf("an impossible threshold: %v", err)
	}
}
