package mapreduce

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Job states.
const (
	JobMap    = "map"    // map tasks run
	JobReduce = "reduce" // every map task is done; reduce tasks run
	JobDone   = "done"
	JobFailed = "failed"
)

// store is the coordinator's durable state: jobs and every attempt of
// every task. The coordinator is its only writer.
type store struct{ db *sqldb.DB }

func openStore(ctx context.Context, db *sqldb.DB) (*store, error) {
	if err := db.Migrate(ctx, migrations, "mapreduce"); err != nil {
		return nil, err
	}
	return &store{db: db}, nil
}

func (s *store) q(query string) string { return s.db.Rebind(query) }

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// JobRow is a job as the store holds it.
type JobRow struct {
	Spec      JobSpec
	State     string
	Error     string
	Submitted time.Time
	Finished  time.Time
}

func (s *store) insertJob(ctx context.Context, spec JobSpec) error {
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, s.q("INSERT INTO mapreduce_jobs (job_id, name, spec, state, error, submitted_at) VALUES (?, ?, ?, ?, '', ?)"),
		spec.ID, spec.Job, string(raw), JobMap, ms(spec.Submitted))
	if err != nil {
		return fmt.Errorf("mapreduce: record job: %w", err)
	}
	return nil
}

const jobColumns = "spec, state, error, submitted_at, finished_at"

func scanJob(row interface{ Scan(...any) error }) (*JobRow, error) {
	var j JobRow
	var spec string
	var sub, fin int64
	if err := row.Scan(&spec, &j.State, &j.Error, &sub, &fin); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(spec), &j.Spec); err != nil {
		return nil, fmt.Errorf("mapreduce: stored spec: %w", err)
	}
	j.Submitted, j.Finished = fromMS(sub), fromMS(fin)
	return &j, nil
}

func (s *store) job(ctx context.Context, id string) (*JobRow, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, s.q("SELECT "+jobColumns+" FROM mapreduce_jobs WHERE job_id = ?"), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.E(apperr.NotFound, "no job %q", id)
	}
	if err != nil {
		return nil, fmt.Errorf("mapreduce: read job: %w", err)
	}
	return j, nil
}

// jobs lists the newest jobs; only those still running with active.
func (s *store) jobs(ctx context.Context, active bool, limit int) ([]*JobRow, error) {
	where := ""
	if active {
		where = " WHERE state IN ('map', 'reduce')"
	}
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+jobColumns+" FROM mapreduce_jobs"+where+" ORDER BY submitted_at DESC, job_id DESC LIMIT ?"), limit)
	if err != nil {
		return nil, fmt.Errorf("mapreduce: list jobs: %w", err)
	}
	defer rows.Close()
	var out []*JobRow
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("mapreduce: list jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func (s *store) setJobState(ctx context.Context, id, state, errText string, finished time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q("UPDATE mapreduce_jobs SET state = ?, error = ?, finished_at = ? WHERE job_id = ?"),
		state, errText, ms(finished), id)
	if err != nil {
		return fmt.Errorf("mapreduce: job state: %w", err)
	}
	return nil
}

// AttemptRow is an attempt with its task and counters.
type AttemptRow struct {
	Ref attemptRef
	Attempt
	Published bool
	Records   int64
	Bytes     int64
}

func (s *store) attempts(ctx context.Context, job string) ([]AttemptRow, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT kind, idx, attempt, state, worker, backup, published, queued_at, started_at, finished_at, records, bytes_out, error
		FROM mapreduce_attempts WHERE job_id = ? ORDER BY kind, idx, attempt`), job)
	if err != nil {
		return nil, fmt.Errorf("mapreduce: read attempts: %w", err)
	}
	defer rows.Close()
	var out []AttemptRow
	for rows.Next() {
		var a AttemptRow
		var state string
		var backup, published int
		var q, st, fin int64
		if err := rows.Scan(&a.Ref.Kind, &a.Ref.Index, &a.Ref.Attempt, &state, &a.Worker, &backup, &published, &q, &st, &fin, &a.Records, &a.Bytes, &a.Error); err != nil {
			return nil, fmt.Errorf("mapreduce: read attempts: %w", err)
		}
		a.Ref.Job, a.N, a.State, a.Backup, a.Published = job, a.Ref.Attempt, AttemptState(state), backup == 1, published == 1
		a.Queued, a.Started, a.Finished = fromMS(q), fromMS(st), fromMS(fin)
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s *store) insertAttempt(ctx context.Context, ref attemptRef, backup bool, now time.Time) error {
	b := 0
	if backup {
		b = 1
	}
	_, err := s.db.ExecContext(ctx, s.q("INSERT INTO mapreduce_attempts (job_id, kind, idx, attempt, state, backup, queued_at, error) VALUES (?, ?, ?, ?, ?, ?, ?, '')"),
		ref.Job, ref.Kind, ref.Index, ref.Attempt, string(AttemptQueued), b, ms(now))
	if err != nil {
		return fmt.Errorf("mapreduce: record attempt %s: %w", ref, err)
	}
	return nil
}

func (s *store) markPublished(ctx context.Context, ref attemptRef) error {
	_, err := s.db.ExecContext(ctx, s.q("UPDATE mapreduce_attempts SET published = 1 WHERE job_id = ? AND kind = ? AND idx = ? AND attempt = ?"),
		ref.Job, ref.Kind, ref.Index, ref.Attempt)
	if err != nil {
		return fmt.Errorf("mapreduce: mark %s published: %w", ref, err)
	}
	return nil
}

// attemptChange is a conditional update of one attempt: it applies only
// while the attempt is in one of from, so that two events racing for one
// attempt (a late done and a lease expiry) settle it once.
type attemptChange struct {
	to       AttemptState
	from     []AttemptState
	worker   string // set when not ""
	started  time.Time
	finished time.Time
	records  int64
	bytes    int64
	errText  string
}

func (s *store) changeAttempt(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, ref attemptRef, c attemptChange) (bool, error) {
	set := []string{"state = ?"}
	args := []any{string(c.to)}
	if c.worker != "" {
		set, args = append(set, "worker = ?"), append(args, c.worker)
	}
	if !c.started.IsZero() {
		set, args = append(set, "started_at = ?"), append(args, ms(c.started))
	}
	if !c.finished.IsZero() {
		set, args = append(set, "finished_at = ?", "records = ?", "bytes_out = ?"), append(args, ms(c.finished), c.records, c.bytes)
	}
	if c.errText != "" {
		set, args = append(set, "error = ?"), append(args, c.errText)
	}
	args = append(args, ref.Job, ref.Kind, ref.Index, ref.Attempt)
	from := make([]string, len(c.from))
	for i, f := range c.from {
		from[i] = "?"
		args = append(args, string(f))
	}
	res, err := ex.ExecContext(ctx, s.q("UPDATE mapreduce_attempts SET "+strings.Join(set, ", ")+
		" WHERE job_id = ? AND kind = ? AND idx = ? AND attempt = ? AND state IN ("+strings.Join(from, ", ")+")"), args...)
	if err != nil {
		return false, fmt.Errorf("mapreduce: update attempt %s: %w", ref, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
