package chat

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
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
