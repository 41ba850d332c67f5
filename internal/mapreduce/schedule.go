package mapreduce

import (
	"slices"
	"time"
)

// The coordinator's decisions, as a pure function of a phase's tasks and
// the time: which attempts have lost their lease, which tasks need an
// attempt, which stragglers get a backup, and when a job has failed. No
// IO, no clock of its own — the coordinator feeds it what the store holds
// and carries out what it returns (the shape of etcd raft's Ready).

// AttemptState is where one attempt of a task stands.
type AttemptState string

const (
	AttemptQueued    AttemptState = "queued"    // published, no worker has said it started
	AttemptRunning   AttemptState = "running"   // a worker started it and holds a lease
	AttemptDone      AttemptState = "done"      // finished first: its output is the task's
	AttemptLate      AttemptState = "late"      // finished after another attempt had
	AttemptFailed    AttemptState = "failed"    // the worker reported an error
	AttemptLost      AttemptState = "lost"      // its lease ran out (worker dead or stalled)
	AttemptCancelled AttemptState = "cancelled" // another attempt finished first
)

// live is an attempt that may still finish.
func (s AttemptState) live() bool { return s == AttemptQueued || s == AttemptRunning }

// Attempt is one execution of a task, as the coordinator knows it.
type Attempt struct {
	N        int          `json:"attempt"`
	State    AttemptState `json:"state"`
	Worker   string       `json:"worker,omitempty"`
	Backup   bool         `json:"backup,omitempty"`
	Queued   time.Time    `json:"queued"`
	Started  time.Time    `json:"started,omitzero"`
	Finished time.Time    `json:"finished,omitzero"`
	// Alive is the last sign of life: the start, then each heartbeat.
	Alive time.Time `json:"-"`
	Error string    `json:"error,omitempty"`
}

// Task is one map or reduce task and its attempts.
type Task struct {
	Kind     string    `json:"kind"` // "map" or "reduce"
	Index    int       `json:"index"`
	Done     bool      `json:"done"`
	Attempts []Attempt `json:"attempts"`
}

func (t *Task) live() []int {
	var out []int
	for i, a := range t.Attempts {
		if a.State.live() {
			out = append(out, i)
		}
	}
	return out
}

func (t *Task) failures() int {
	n := 0
	for _, a := range t.Attempts {
		if a.State == AttemptFailed || a.State == AttemptLost {
			n++
		}
	}
	return n
}

// Policy is the coordinator's tuning.
type Policy struct {
	// Lease is how long a running attempt may go without a heartbeat
	// before it is declared lost and its task given to another worker.
	Lease time.Duration
	// MaxFailures of one task (failed or lost attempts) fail the job: a
	// task that kills every worker it meets must not loop forever.
	MaxFailures int
	// Backups: once every task of the phase has started and no more than
	// BackupTail of them (a fraction, at least one task) remain, a task
	// whose only attempt has run BackupFactor times the phase's median
	// task time (and at least BackupMin) gets one backup attempt. Zero
	// BackupFactor turns backups off.
	BackupTail   float64
	BackupFactor float64
	BackupMin    time.Duration
}

// DefaultPolicy is what `scalelab mapreduce coordinator` runs.
func DefaultPolicy() Policy {
	return Policy{Lease: 10 * time.Second, MaxFailures: 4, BackupTail: 0.1, BackupFactor: 1.5, BackupMin: 2 * time.Second}
}

// Action is one thing the coordinator must do.
type Action struct {
	Kind  ActionKind
	Task  int // index into the phase's tasks
	Index int // the attempt's index in Task.Attempts (Expire)
}

// ActionKind names an Action.
type ActionKind int

const (
	Expire       ActionKind = iota + 1 // the attempt's lease ran out: mark it lost
	Launch                             // queue a new attempt of the task
	LaunchBackup                       // queue a backup attempt of a straggler
	FailJob                            // the task failed MaxFailures times
)

// Plan decides what the coordinator must do for one phase (all map tasks,
// or all reduce tasks) at now. Expired leases are acted on in the same
// plan: a task whose only attempt expires is launched again at once.
func Plan(now time.Time, tasks []Task, p Policy) []Action {
	var acts []Action
	var durations []time.Duration
	started, remaining := true, 0
	for ti := range tasks {
		t := &tasks[ti]
		for ai, a := range t.Attempts {
			if a.State == AttemptDone {
				durations = append(durations, a.Finished.Sub(a.Started))
			}
			if !t.Done && a.State == AttemptRunning && now.Sub(a.Alive) > p.Lease {
				acts = append(acts, Action{Kind: Expire, Task: ti, Index: ai})
			}
		}
		if t.Done {
			continue
		}
		remaining++
		failures, live := t.failures(), 0
		for _, ai := range t.live() {
			if !expired(acts, ti, ai) {
				live++
				if t.Attempts[ai].State == AttemptQueued {
					started = false
				}
			} else {
				failures++
			}
		}
		switch {
		case failures >= p.MaxFailures:
			return append(acts, Action{Kind: FailJob, Task: ti})
		case live == 0:
			acts = append(acts, Action{Kind: Launch, Task: ti})
			started = false
		}
	}
	if p.BackupFactor <= 0 || !started || remaining == 0 || len(durations) == 0 ||
		float64(remaining) > max(1, p.BackupTail*float64(len(tasks))) {
		return acts
	}
	slices.Sort(durations)
	slow := max(p.BackupMin, time.Duration(p.BackupFactor*float64(durations[len(durations)/2])))
	for ti := range tasks {
		t := &tasks[ti]
		if t.Done || hasBackup(t) {
			continue
		}
		live := t.live()
		if len(live) == 1 && t.Attempts[live[0]].State == AttemptRunning && now.Sub(t.Attempts[live[0]].Started) > slow {
			acts = append(acts, Action{Kind: LaunchBackup, Task: ti})
		}
	}
	return acts
}

func expired(acts []Action, task, attempt int) bool {
	for _, a := range acts {
		if a.Kind == Expire && a.Task == task && a.Index == attempt {
			return true
		}
	}
	return false
}

func hasBackup(t *Task) bool {
	for _, a := range t.Attempts {
		if a.Backup {
			return true
		}
	}
	return false
}
