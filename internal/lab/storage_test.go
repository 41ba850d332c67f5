package lab

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// The lesson says what the figures say: which engine was faster for which
// write, whether CPU per write differed, and a stall only when there was
// one.
func TestStorageLessonFollowsTheFigures(t *testing.T) {
	runs := []engineRun{
		{Engine: "bbolt", Workload: "coordinator writes", WPS: 7000, P99MS: 7, CPUPerWrite: 67},
		{Engine: "bbolt", Workload: "replica batches of 64", WPS: 38000, P99MS: 77, CPUPerWrite: 25},
		{Engine: "pebble", Workload: "coordinator writes", WPS: 23000, P99MS: 4, CPUPerWrite: 65},
		{Engine: "pebble", Workload: "replica batches of 64", WPS: 52000, P99MS: 394, CPUPerWrite: 28},
	}
	r := storageReport(StorageOptions{Workers: 32}, runs)
	text := strings.Join(r.Lesson, " ")
	for _, want := range []string{"Pebble is 3.29×", "within 15 %", "3.3× faster on Pebble", "stalled writers", "read back"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q: %s", want, text)
		}
	}
	if !r.Passed || r.Figures["pebble_coordinator_writes_per_s"] != 23000 {
		t.Fatalf("report: %+v", r)
	}
	// bbolt ahead, Pebble dearer per write, no stall.
	runs[2].WPS, runs[2].CPUPerWrite, runs[3].P99MS = 6000, 90, 80
	text = strings.Join(storageReport(StorageOptions{Workers: 32}, runs).Lesson, " ")
	for _, want := range []string{"bbolt is 1.17×", "34 % more CPU", "not much faster on Pebble"} {
		if !strings.Contains(text, want) {
			t.Errorf("lesson lacks %q: %s", want, text)
		}
	}
	if strings.Contains(text, "stalled") {
		t.Errorf("a stall reported without one: %s", text)
	}
	if r := storageReport(StorageOptions{}, runs[:3]); r.Passed {
		t.Fatal("a run missing a workload passed")
	}
}

// A short real run on both engines: four workloads, every acknowledged
// write read back, a chart.
func TestStorageEnginesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("writes to two stores for a few seconds")
	}
	r, err := runStorageEngines(context.Background(), Env{Log: io.Discard, Dir: t.TempDir()},
		StorageOptions{Workers: 8, Keys: 2000, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed || len(r.Figures) != 12 || r.Plots["writes.svg"] == "" {
		t.Fatalf("report: passed %v, %d figures, plots %v", r.Passed, len(r.Figures), len(r.Plots))
	}
	for k, v := range r.Figures {
		if v <= 0 {
			t.Errorf("figure %s = %v", k, v)
		}
	}
}
