package mapreduce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

const processToken = "mapreduce-test-token-0123456789abcdef"

// Real processes on real engines: the coordinator (its state in
// PostgreSQL, then in MariaDB) and two workers over an external NATS and
// a shared blob directory. The coordinator is killed with SIGKILL mid-job
// and started again, then a worker is killed and not replaced: the job
// completes with the sequential run's output.
func TestProcessesKilledMidJob(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	for _, db := range []struct {
		name string
		url  func(testing.TB) string
	}{{"PostgreSQL", testsvc.Postgres}, {"MariaDB", testsvc.MySQL}} {
		t.Run(db.name, func(t *testing.T) {
			dir := t.TempDir()
			input := filepath.Join(dir, "input")
			if err := WriteCorpusFiles(input, 7, 24<<20, 8<<20); err != nil {
				t.Fatal(err)
			}
			ns, natsURL := testsvc.Name("mrp"), testsvc.NATS(t)
			testsvc.CleanupBroker(t, natsURL, ns)
			common := []string{"--broker", natsURL, "--namespace", ns, "--blob", "file://" + filepath.Join(dir, "blobs"), "--admin-token", processToken}
			coord := proctest.Start(t, proctest.FreeAddr(t), append([]string{"mapreduce", "coordinator", "--db", db.url(t), "--data", filepath.Join(dir, "coord"),
				"--lease", "1s"}, common...)...)
			w1 := proctest.Start(t, proctest.FreeAddr(t), append([]string{"mapreduce", "worker", "--data", filepath.Join(dir, "w1"), "--worker-id", "w1"}, common...)...)
			proctest.Start(t, proctest.FreeAddr(t), append([]string{"mapreduce", "worker", "--data", filepath.Join(dir, "w2"), "--worker-id", "w2"}, common...)...)

			id := submitHTTP(t, coord.URL(), SubmitRequest{Job: "wordcount", Input: input, Reducers: 3, SplitSize: 256 << 10})
			waitStatus(t, coord.URL(), id, "four map tasks done", func(s *JobStatus) bool { return s.MapsDone >= 4 })
			coord.Kill()
			time.Sleep(300 * time.Millisecond) // the workers go on, their events wait in the broker
			coord.Restart()
			waitStatus(t, coord.URL(), id, "half the map tasks done", func(s *JobStatus) bool { return s.MapsDone >= s.Maps/2 })
			w1.Kill()
			st := waitStatus(t, coord.URL(), id, "the job to end", func(s *JobStatus) bool { return s.State == JobDone || s.State == JobFailed })
			if st.State != JobDone {
				t.Fatalf("job %s: %s", st.State, st.Error)
			}
			resp, err := http.Get(coord.URL() + "/api/v1/jobs/" + id + "/output")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			files := map[string][]byte{}
			entries, _ := os.ReadDir(input)
			for _, e := range entries {
				files[e.Name()], _ = os.ReadFile(filepath.Join(input, e.Name()))
			}
			want := linesOf(sortedLines(linesOf(sequential(t, wordCount{}, files))))
			if !bytes.Equal(linesOf(sortedLines(got)), want) {
				t.Fatalf("output (%d bytes) differs from the sequential run's (%d bytes)", len(got), len(want))
			}
			t.Logf("%d maps, %d attempts (%d retries, %d backups, %d wasted) in %.1f s", st.Maps, st.Counters.Attempts, st.Counters.Retries, st.Counters.Backups, st.Counters.Wasted, st.Seconds)
		})
	}
}

func submitHTTP(t *testing.T, base string, req SubmitRequest) string {
	t.Helper()
	raw, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, base+"/api/v1/jobs", bytes.NewReader(raw))
	hr.Header.Set("Authorization", "Bearer "+processToken)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st JobStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submit: %s %v", resp.Status, err)
	}
	return st.ID
}

func waitStatus(t *testing.T, base, id, what string, cond func(*JobStatus) bool) *JobStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("%s/api/v1/jobs/%s", base, id))
		if err == nil {
			var st JobStatus
			derr := json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if derr == nil && resp.StatusCode == http.StatusOK && cond(&st) {
				return &st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
