package lab

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/proctest"
)

func TestFlashSaleLessonFollowsTheFigures(t *testing.T) {
	o := FlashSaleOptions{Users: 10000, Stock: 1000, Over: time.Second, PaymentLatency: 20 * time.Millisecond, Workers: 16, FunctionConc: 64, ColdStart: 250 * time.Millisecond,
		LambdaPerMillion: 0.2, LambdaGBSecond: 0.0000166667, FargateVCPUHour: 0.04048, FargateGBHour: 0.004445}
	rs := []flashResult{
		{Variant: "sync", Accepted: 1000, Refused: 9000, P50: 900, P99: 2400, SettledAfterS: 3.2, PeakDBConns: 12},
		{Variant: "async+workers", Accepted: 1000, Refused: 9000, P50: 2, P99: 12, SettledAfterS: 2.1, PeakDBConns: 4, CostUSD: 0.00001},
		{Variant: "async+functions", Accepted: 1000, Refused: 9000, P50: 2, P99: 13, SettledAfterS: 1.5, PeakDBConns: 5, ColdStarts: 64, Invocations: 1000, GBSeconds: 2.6, CostUSD: 0.00024},
	}
	r := flashSaleReport(o, rs)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"All three sold exactly 1000 units", "p99 2400.0 ms", "(200.0× faster at p99)", "sync 3.2 s", "sync 12, async+workers 4", "64 cold starts (250ms each) for 1000 invocations"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q:\n%s", want, text)
		}
	}
	if !r.Passed {
		t.Fatal("a clean run failed")
	}
	rs[1].Oversold = 1
	if r := flashSaleReport(o, rs); r.Passed || !strings.Contains(strings.Join(r.Lesson, " "), "async+workers BROKE THE GUARANTEES: 1 oversold") {
		t.Fatalf("an oversell passed: %v", r.Lesson)
	}
	rs[1].Oversold, rs[2].Unsold = 0, 3
	if r := flashSaleReport(o, rs); r.Passed {
		t.Fatal("units left unsold passed")
	}
}

// A small real run: three deployments, zero oversold, unsold and lost.
func TestFlashSaleRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	o := FlashSaleOptions{Users: 600, Stock: 60, Over: 500 * time.Millisecond, PaymentLatency: 5 * time.Millisecond, Workers: 4, FunctionConc: 8, ColdStart: 50 * time.Millisecond,
		WorkerVCPU: 0.25, WorkerMemGB: 0.5, FargateVCPUHour: 0.04048, FargateGBHour: 0.004445, LambdaPerMillion: 0.2, LambdaGBSecond: 0.0000166667, FunctionMemMB: 128}
	r, err := runFlashSale(context.Background(), Env{Log: io.Discard, Dir: t.TempDir(), Binary: proctest.Binary(t)}, o)
	if err != nil {
		t.Fatal(err)
	}
	f := r.Figures
	for _, v := range []string{"sync", "async_workers", "async_functions"} {
		if f[v+"_accepted"] != 60 || f[v+"_refused"] != 540 || f[v+"_oversold"] != 0 || f[v+"_unsold"] != 0 || f[v+"_lost"] != 0 || f[v+"_settled_after_s"] <= 0 {
			t.Errorf("%s: %v", v, f)
		}
	}
	if f["async_functions_cold_starts"] < 1 || f["sync_peak_db_connections"] < 1 {
		t.Errorf("cold starts or connections not measured: %v", f)
	}
	if !r.Passed {
		t.Fatalf("lesson %v", r.Lesson)
	}
}
