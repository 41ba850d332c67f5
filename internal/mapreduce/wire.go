package mapreduce

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scalelab/scalelab/internal/platform/auth"
)

// What travels between the coordinator and the workers, and where things
// live in the blob store. Workers need only the broker and the blob store:
// the job's spec is a blob, a task is a message naming its inputs, and a
// worker's answers are messages back.

// Broker topics and groups.
const (
	tasksTopic      = "mapreduce-tasks"      // task messages; group workersGroup, one task per member at a time
	workersGroup    = "workers"              //
	eventsTopic     = "mapreduce-events"     // started, done, failed; group coordinatorGroup
	coordGroup      = "coordinator"          //
	heartbeatsTopic = "mapreduce-heartbeats" // fan-out, not durable: a heartbeat is stale in seconds
	controlTopic    = "mapreduce-control"    // fan-out to workers: cancel these attempts
)

// JobSpec is a submitted job: what every task of it needs to know. The
// coordinator writes it to the blob store before any task is published.
type JobSpec struct {
	ID       string `json:"id"`
	Job      string `json:"job"`
	Params   Params `json:"params,omitempty"`
	Reducers int    `json:"reducers"`
	// InputRoot is where the split's files are: an absolute directory
	// every worker sees (a shared filesystem), or "blob:PREFIX" for
	// objects in the blob store. A split's File is relative to it, and is
	// the name the job's map function sees.
	InputRoot string    `json:"input_root"`
	Splits    []Split   `json:"splits"`
	MaxRecord int       `json:"max_record"`
	Memory    int       `json:"memory"` // a map task's pair buffer before it spills
	Submitted time.Time `json:"submitted"`
}

// Blob keys of a job.
func specKey(job string) string { return "mapreduce/" + job + "/job.json" }
func mapOutputKey(job string, m, a int) string {
	return fmt.Sprintf("mapreduce/%s/map/%05d.%d", job, m, a)
}
func partKey(job string, r int) string { return fmt.Sprintf("mapreduce/%s/out/part-%05d", job, r) }
func resultKey(job string) string      { return "mapreduce/" + job + "/out/result" }

// attemptRef names one attempt of one task.
type attemptRef struct {
	Job     string `json:"job"`
	Kind    string `json:"kind"`
	Index   int    `json:"index"`
	Attempt int    `json:"attempt"`
}

func (a attemptRef) String() string {
	return fmt.Sprintf("%s/%s-%d.%d", a.Job, a.Kind, a.Index, a.Attempt)
}

// taskMessage asks a worker to run an attempt. A reduce attempt carries
// the blob key of every map task's chosen output, in map order.
type taskMessage struct {
	attemptRef
	Maps []string `json:"maps,omitempty"`
}

// Event types a worker reports.
const (
	eventStarted = "started"
	eventDone    = "done"
	eventFailed  = "failed"
	// eventAbandoned: the worker stopped (shut down) before finishing;
	// not the task's fault, so not counted against it.
	eventAbandoned = "abandoned"
)

// event is a worker's report on an attempt. LostMap and LostAttempt, on
// a failed reduce, are the map attempt whose output it could not read
// (LostMap -1: none), which the coordinator then runs again.
type event struct {
	attemptRef
	Type        string `json:"type"`
	Worker      string `json:"worker"`
	Records     int64  `json:"records,omitempty"` // map: records read; reduce: keys reduced
	Bytes       int64  `json:"bytes,omitempty"`   // output written
	Error       string `json:"error,omitempty"`
	LostMap     int    `json:"lost_map"`
	LostAttempt int    `json:"lost_attempt,omitempty"`
}

// heartbeat is a worker's periodic sign of life, with what it runs.
type heartbeat struct {
	Worker  string       `json:"worker"`
	Slots   int          `json:"slots"`
	Running []attemptRef `json:"running"`
}

// control tells workers to stop attempts that no longer count.
type control struct {
	Cancel []cancelRef `json:"cancel"`
}

// cancelRef is an attempt to stop; Worker, when set, limits it to one
// worker (a duplicate delivery of an attempt another worker runs).
type cancelRef struct {
	attemptRef
	Worker string `json:"worker,omitempty"`
}

// encode is a message as it travels: JSON, sealed with the cluster key
// when there is one (auth.SealDatagram: an HMAC tag, so that nobody
// without the key can forge a task, an event or a heartbeat on the
// broker).
func encode(key *auth.Key, v any) []byte {
	raw, _ := json.Marshal(v)
	return key.SealDatagram(raw)
}

// errBadTag is a message without a valid cluster-key tag: forged, or sent
// by a process with another key (or none).
var errBadTag = errors.New("no valid cluster-key tag")

// decode checks a message's tag and parses it.
func decode[T any](key *auth.Key, data []byte, what string) (T, error) {
	var v T
	payload, ok := key.OpenDatagram(data)
	if !ok {
		return v, fmt.Errorf("mapreduce: a %s message: %w", what, errBadTag)
	}
	if len(payload) > 16<<20 {
		return v, fmt.Errorf("mapreduce: a %d-byte %s message", len(payload), what)
	}
	if err := json.Unmarshal(payload, &v); err != nil {
		if key == nil && len(data) > auth.DatagramTagBytes && json.Valid(data[:len(data)-auth.DatagramTagBytes]) {
			// JSON and a tag: sealed by a process that has a key this one lacks.
			return v, fmt.Errorf("mapreduce: a %s message: %w", what, errBadTag)
		}
		return v, fmt.Errorf("mapreduce: a %s message does not parse: %w", what, err)
	}
	return v, nil
}

func (a attemptRef) valid() error {
	switch {
	case a.Job == "" || len(a.Job) > 32:
		return fmt.Errorf("mapreduce: bad job id %q", a.Job)
	case a.Kind != "map" && a.Kind != "reduce":
		return fmt.Errorf("mapreduce: bad task kind %q", a.Kind)
	case a.Index < 0 || a.Index > 1<<20 || a.Attempt < 1 || a.Attempt > 1<<10:
		return fmt.Errorf("mapreduce: bad task %d attempt %d", a.Index, a.Attempt)
	}
	for _, c := range a.Job {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("mapreduce: bad job id %q", a.Job)
		}
	}
	return nil
}
