// Package apperr is scalelab's one application error type: an error carries
// a code (not found, invalid, conflict …) and a message that is safe to show
// a client. The HTTP layer maps codes to status codes in one table
// (httpx.StatusOf), so services never think in HTTP statuses.
//
// The idea is Ben Johnson's wtf.Error: services return apperr.E(NotFound,
// "link %q not found", code); anything that is not an *Error is an internal
// failure whose text is logged, never shown.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an application error.
type Code string

// The codes a service may return. Each maps to exactly one HTTP status.
const (
	Invalid         Code = "invalid"           // 400: the request is malformed or a value is out of range
	Unauthorized    Code = "unauthorized"      // 401: credentials are missing
	Forbidden       Code = "forbidden"         // 403: credentials do not allow this
	NotFound        Code = "not_found"         // 404
	Conflict        Code = "conflict"          // 409: the name is taken
	Gone            Code = "gone"              // 410: it existed and has expired
	TooLarge        Code = "too_large"         // 413: the body is over the limit
	TooEarly        Code = "too_early"         // 425: it is not open yet; try again at the time given
	TooManyRequests Code = "too_many_requests" // 429
	BadGateway      Code = "bad_gateway"       // 502: the upstream answered badly or not at all (a proxy's answer)
	Unavailable     Code = "unavailable"       // 503: a dependency is down; try again
	Timeout         Code = "timeout"           // 504: a dependency did not answer in time
	Internal        Code = "internal"          // 500
)

// Error is an application error with a client-safe message.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, when set, tells the client when trying again makes sense
	// (HTTP Retry-After).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// E builds an *Error with a formatted message.
func E(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Retry builds an *Error that tells the client to come back after d.
func Retry(code Code, d time.Duration, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), RetryAfter: d}
}

// RetryAfterOf returns err's RetryAfter, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// CodeOf returns the code of err, or Internal when err is not an *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// MessageOf returns the client-safe message of err; internal errors get a
// generic text so that no detail of the server leaks.
func MessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// UsageError is a mistake in a command line, as opposed to a failure of
// what the command did: the CLI prints it and exits with code 2. Every
// command wraps its own with Usage, so there is one type to recognise.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usage marks err as a command-line mistake.
func Usage(err error) error { return &UsageError{Err: err} }

// Usagef is Usage(fmt.Errorf(format, args...)).
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// IsUsage reports whether err is, or wraps, a UsageError.
func IsUsage(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}
