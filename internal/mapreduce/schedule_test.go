package mapreduce

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func running(started, alive float64) Attempt {
	return Attempt{State: AttemptRunning, Queued: at(started), Started: at(started), Alive: at(alive)}
}

func doneIn(started, took float64) Attempt {
	return Attempt{State: AttemptDone, Queued: at(started), Started: at(started), Finished: at(started + took)}
}

func tasksOf(attempts ...[]Attempt) []Task {
	out := make([]Task, len(attempts))
	for i, a := range attempts {
		out[i] = Task{Kind: "map", Index: i, Attempts: a}
		for _, x := range a {
			if x.State == AttemptDone {
				out[i].Done = true
			}
		}
	}
	return out
}

func actions(acts []Action) string { return fmt.Sprint(acts) }

func TestPlan(t *testing.T) {
	p := Policy{Lease: 10 * time.Second, MaxFailures: 3, BackupTail: 0.1, BackupFactor: 1.5, BackupMin: 2 * time.Second}
	nineDone := func(last ...Attempt) []Task {
		var as [][]Attempt
		for i := 0; i < 9; i++ {
			as = append(as, []Attempt{doneIn(0, 2)})
		}
		return tasksOf(append(as, last)...)
	}
	cases := []struct {
		name  string
		now   float64
		tasks []Task
		p     Policy
		want  []Action
	}{
		{"new tasks are launched", 0, tasksOf(nil, nil), p, []Action{{Launch, 0, 0}, {Launch, 1, 0}}},
		{"a queued attempt waits for a worker without a lease", 1000, tasksOf([]Attempt{{State: AttemptQueued, Queued: at(0)}}), p, nil},
		{"a running attempt with a recent heartbeat is left alone", 30, tasksOf([]Attempt{running(0, 25)}), p, nil},
		{"a silent attempt loses its lease and the task is launched again", 30, tasksOf([]Attempt{running(0, 19)}), p,
			[]Action{{Expire, 0, 0}, {Launch, 0, 0}}},
		{"a heartbeat exactly one lease old still holds", 30, tasksOf([]Attempt{running(0, 20)}), p, nil},
		{"a finished task's straggling attempt keeps its lease", 100, tasksOf([]Attempt{doneIn(0, 1), running(0, 0)}), p, nil},
		{"a failed attempt is launched again", 5, tasksOf([]Attempt{{State: AttemptFailed}}), p, []Action{{Launch, 0, 0}}},
		{"MaxFailures fails the job", 5, tasksOf([]Attempt{{State: AttemptFailed}, {State: AttemptLost}, {State: AttemptFailed}}), p,
			[]Action{{FailJob, 0, 0}}},
		{"an expiry counts toward MaxFailures", 50, tasksOf([]Attempt{{State: AttemptFailed}, {State: AttemptLost}, running(0, 1)}), p,
			[]Action{{Expire, 0, 2}, {FailJob, 0, 0}}},
		{"the last straggler gets a backup", 10, nineDone(running(0, 9.5)), p, []Action{{LaunchBackup, 9, 0}}},
		{"not before 1.5× the median", 10, nineDone(running(7.5, 9.5)), p, nil},
		{"not below BackupMin", 10, nineDone(running(8.5, 9.5)), Policy{Lease: p.Lease, MaxFailures: 3, BackupTail: 0.1, BackupFactor: 0.1, BackupMin: 2 * time.Second}, nil},
		{"one backup per task", 20, nineDone(running(0, 19), Attempt{State: AttemptRunning, Backup: true, Started: at(11), Alive: at(19)}), p, nil},
		{"backups off", 10, nineDone(running(0, 9.5)), Policy{Lease: p.Lease, MaxFailures: 3}, nil},
		{"no backups while tasks wait in the queue", 10,
			append(nineDone(running(0, 9.5))[1:], Task{Attempts: []Attempt{{State: AttemptQueued}}}), p, nil},
		{"no backups while more than the tail remains", 10,
			append(nineDone(running(0, 9.5))[1:], Task{Index: 10, Attempts: []Attempt{running(0, 9.5)}}), p, nil},
		{"no backups before any task finished", 100, tasksOf([]Attempt{running(0, 99)}), p, nil},
		{"a lost straggler is relaunched, not backed up", 30, nineDone(running(0, 5)), p, []Action{{Expire, 9, 0}, {Launch, 9, 0}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Plan(at(c.now), c.tasks, c.p)
			if actions(got) != actions(c.want) {
				t.Fatalf("Plan = %v, want %v", got, c.want)
			}
		})
	}
}

// Whatever the state, Plan never launches a task that is done or has a
// live attempt left (other than one backup), never expires an attempt of
// a done task, and always leaves a task that is not done with a way to
// finish: a live attempt, a launch, or a failed job.
func TestPlanInvariants(t *testing.T) {
	p := DefaultPolicy()
	states := []AttemptState{AttemptQueued, AttemptRunning, AttemptDone, AttemptLate, AttemptFailed, AttemptLost, AttemptCancelled}
	seed := uint64(1)
	rnd := func(n int) int {
		seed = seed*6364136223846793005 + 1442695040888963407
		return int((seed >> 33) % uint64(n))
	}
	for trial := 0; trial < 20000; trial++ {
		tasks := make([]Task, 1+rnd(6))
		for i := range tasks {
			for a := rnd(4); a > 0; a-- {
				s := states[rnd(len(states))]
				att := Attempt{State: s, Backup: rnd(4) == 0, Started: at(float64(rnd(30))), Alive: at(float64(rnd(30)))}
				att.Finished = att.Started.Add(time.Duration(rnd(5)) * time.Second)
				tasks[i].Attempts = append(tasks[i].Attempts, att)
				if s == AttemptDone {
					tasks[i].Done = true
				}
			}
		}
		now := at(30)
		acts := Plan(now, tasks, p)
		launched := map[int]int{}
		failed := false
		for _, a := range acts {
			switch a.Kind {
			case Expire:
				if tasks[a.Task].Done || tasks[a.Task].Attempts[a.Index].State != AttemptRunning {
					t.Fatalf("expired attempt %d of task %+v", a.Index, tasks[a.Task])
				}
			case Launch, LaunchBackup:
				if tasks[a.Task].Done {
					t.Fatalf("launched done task %+v", tasks[a.Task])
				}
				launched[a.Task]++
			case FailJob:
				failed = true
			}
		}
		if failed {
			continue
		}
		for ti, task := range tasks {
			if task.Done {
				continue
			}
			live := 0
			for ai, a := range task.Attempts {
				if a.State.live() && !expired(acts, ti, ai) {
					live++
				}
			}
			if live+launched[ti] == 0 {
				t.Fatalf("task %+v left without an attempt: %v", task, acts)
			}
			if launched[ti] > 1 || (launched[ti] == 1 && live > 1) {
				t.Fatalf("task %+v over-launched: %v", task, acts)
			}
		}
	}
}
