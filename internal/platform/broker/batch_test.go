package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/broker"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// With a Weight, a batch closes on the records its messages carry, not on
// their count: eight messages of weight 30 and a size of 100 make two
// batches of four (120 each), each written once and then acked.
func TestBatchConsumerWeight(t *testing.T) {
	ctx := context.Background()
	b := open(t, "", testsvc.Name("batchtest"), t.TempDir())
	defer b.Close()
	for i := 0; i < 8; i++ { // stored before the group exists: delivered at once
		if err := b.Publish(ctx, "records", []byte("30:"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var sizes []int
	var got []string
	write := func(_ context.Context, batch []*broker.Message) error {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(batch))
		for _, m := range batch {
			got = append(got, string(m.Data))
		}
		return nil
	}
	weight := func(m *broker.Message) int {
		n, _ := strconv.Atoi(string(m.Data[:2]))
		return n
	}
	bc, err := broker.ConsumeBatches(ctx, b, "records", "writers",
		broker.BatchConfig{Size: 100, Wait: 10 * time.Second, Weight: weight}, write, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	testsvc.WaitUntil(t, "two batches", 15*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sizes) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(sizes) != "[4 4]" || len(got) != 8 {
		t.Fatalf("batches of %v messages (%d in all), want [4 4]", sizes, len(got))
	}
}
