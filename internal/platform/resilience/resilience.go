package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// Config is the protection around one dependency. Zero durations and
// counts disable the pattern they configure.
type Config struct {
	// Timeout bounds each attempt.
	Timeout time.Duration
	// Retries is how many times an idempotent call is tried again after a
	// failure, waiting an exponential backoff from BackoffMin to BackoffMax
	// with ±Jitter (a fraction) so that clients do not retry in lockstep.
	Retries                int
	BackoffMin, BackoffMax time.Duration
	Jitter                 float64
	// The breaker opens when BreakerFailures of the last BreakerWindow calls
	// failed, rejects calls for BreakerDelay, then lets BreakerProbes calls
	// through (half-open) and closes if they all succeed.
	BreakerFailures, BreakerWindow uint
	BreakerDelay                   time.Duration
	BreakerProbes                  uint
	// MaxConcurrent bounds calls in flight (a bulkhead); a call waits at
	// most MaxWait for a slot.
	MaxConcurrent int
	MaxWait       time.Duration
}

// DefaultConfig suits a synchronous call on a request path: a dependency
// that usually answers in milliseconds.
func DefaultConfig() Config {
	return Config{
		Timeout: 500 * time.Millisecond,
		Retries: 2, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Jitter: 0.5,
		BreakerFailures: 10, BreakerWindow: 20, BreakerDelay: 5 * time.Second, BreakerProbes: 3,
		MaxConcurrent: 64, MaxWait: 50 * time.Millisecond,
	}
}

// Dependency runs calls to one downstream dependency under its policies.
// It is safe for concurrent use.
type Dependency struct {
	name    string
	cfg     Config
	breaker circuitbreaker.CircuitBreaker[any]
	plain   failsafe.Executor[any] // not retried
	retried failsafe.Executor[any] // retried (idempotent calls)
	metrics *Metrics
}

// permanentError marks an answer that is not the dependency failing.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as the dependency's definite answer (a declined card,
// no stock): it is returned at once, never retried, and does not count
// against the breaker.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// New builds the protection for the dependency called name. m may be nil.
func New(name string, cfg Config, m *Metrics) *Dependency {
	d := &Dependency{name: name, cfg: cfg, metrics: m}
	failure := func(_ any, err error) bool { return err != nil && !isPermanent(err) }

	var inner []failsafe.Policy[any] // outermost first
	if cfg.BreakerFailures > 0 {
		window := max(cfg.BreakerWindow, cfg.BreakerFailures)
		b := circuitbreaker.NewBuilder[any]().
			HandleIf(func(r any, err error) bool {
				// A full bulkhead says nothing about the dependency's health.
				return failure(r, err) && !errors.Is(err, bulkhead.ErrFull)
			}).
			WithFailureThresholdRatio(cfg.BreakerFailures, window).
			WithDelay(cfg.BreakerDelay).
			WithSuccessThreshold(max(cfg.BreakerProbes, 1)).
			OnStateChanged(func(e circuitbreaker.StateChangedEvent) { m.breakerState(name, e.NewState) })
		d.breaker = b.Build()
		inner = append(inner, d.breaker)
		m.breakerState(name, circuitbreaker.ClosedState)
	}
	if cfg.MaxConcurrent > 0 {
		inner = append(inner, bulkhead.NewBuilder[any](uint(cfg.MaxConcurrent)).WithMaxWaitTime(cfg.MaxWait).Build())
	}
	if cfg.Timeout > 0 {
		inner = append(inner, timeout.New[any](cfg.Timeout))
	}
	d.plain = executor(inner)
	if cfg.Retries > 0 {
		rb := retrypolicy.NewBuilder[any]().
			HandleIf(failure).
			AbortOnErrors(circuitbreaker.ErrOpen, bulkhead.ErrFull, context.Canceled).
			WithMaxRetries(cfg.Retries).
			ReturnLastFailure()
		if cfg.BackoffMin > 0 {
			rb = rb.WithBackoff(cfg.BackoffMin, max(cfg.BackoffMax, cfg.BackoffMin))
			if cfg.Jitter > 0 {
				rb = rb.WithJitterFactor(cfg.Jitter)
			}
		}
		d.retried = executor(append([]failsafe.Policy[any]{rb.Build()}, inner...))
	} else {
		d.retried = d.plain
	}
	return d
}

func executor(policies []failsafe.Policy[any]) failsafe.Executor[any] {
	if len(policies) == 0 {
		return nil
	}
	return failsafe.With(policies...)
}

// Name is the dependency's name.
func (d *Dependency) Name() string { return d.name }

// Breaker reports the breaker's state: "closed", "open", "half-open", or
// "none" without a breaker.
func (d *Dependency) Breaker() string {
	if d.breaker == nil {
		return "none"
	}
	return stateName(d.breaker.State())
}

// Do calls fn under the dependency's policies; idempotent calls may be
// retried. fn must honour its ctx, which carries the attempt's deadline.
//
// Outcomes of the protection come back as client-ready errors: an open
// breaker or a full bulkhead as apperr.Unavailable with RetryAfter, a
// timeout as apperr.Timeout. Any other error is fn's last error, wrapped.
func (d *Dependency) Do(ctx context.Context, idempotent bool, fn func(ctx context.Context) error) error {
	ex := d.plain
	if idempotent {
		ex = d.retried
	}
	start := time.Now()
	d.metrics.inFlight(d.name, 1)
	var err error
	if ex == nil {
		err = fn(ctx)
	} else {
		err = ex.WithContext(ctx).RunWithExecution(func(e failsafe.Execution[any]) error {
			err := fn(e.Context())
			if err != nil && callerLeft(ctx) {
				// A failure because the caller hung up says nothing about
				// the dependency: it must not count towards the breaker
				// (wrk closing 64 connections opened it for 5 s).
				return Permanent(err)
			}
			return err
		})
	}
	d.metrics.inFlight(d.name, -1)
	declined := isPermanent(err)
	err = d.translate(ctx, err)
	label := outcome(err, declined)
	if err != nil && callerLeft(ctx) {
		label = "canceled"
	}
	d.metrics.observe(d.name, label, time.Since(start))
	return err
}

// callerLeft reports whether the caller cancelled (as opposed to its
// deadline passing, which is the dependency being slow).
func callerLeft(ctx context.Context) bool { return errors.Is(ctx.Err(), context.Canceled) }

func (d *Dependency) translate(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, circuitbreaker.ErrOpen):
		wait := max(d.breaker.RemainingDelay(), time.Second)
		return apperr.Retry(apperr.Unavailable, wait, "%s is failing: its circuit breaker is open; try again in %s", d.name, wait.Round(time.Second))
	case errors.Is(err, bulkhead.ErrFull):
		return apperr.Retry(apperr.Unavailable, time.Second, "%s is saturated: %d calls in flight already", d.name, d.cfg.MaxConcurrent)
	case errors.Is(err, timeout.ErrExceeded):
		return &apperr.Error{Code: apperr.Timeout, Message: fmt.Sprintf("%s did not answer within %s", d.name, d.cfg.Timeout)}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return &apperr.Error{Code: apperr.Timeout, Message: fmt.Sprintf("%s did not answer before the request's deadline", d.name)}
	}
	var pe permanentError
	if errors.As(err, &pe) {
		return pe.err
	}
	return fmt.Errorf("%s: %w", d.name, err)
}

func outcome(err error, declined bool) string {
	switch {
	case err == nil:
		return "ok"
	case declined:
		return "declined"
	case apperr.CodeOf(err) == apperr.Timeout:
		return "timeout"
	case apperr.CodeOf(err) == apperr.Unavailable && apperr.RetryAfterOf(err) > 0:
		return "rejected"
	default:
		return "error"
	}
}
