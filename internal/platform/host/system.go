package host

import (
	"context"
	"net/http"

	"github.com/scalelab/scalelab/internal/platform/httpx"
)

// System is what a system exports to the host.
type System interface {
	Name() string
	Description() string
	// Handler serves the system's routes relative to its mount point.
	Handler() http.Handler
	// Checks are the system's own readiness checks (engines are checked by the host).
	Checks() []httpx.Check
	// Close stops background work and flushes buffers; engines close after.
	Close(ctx context.Context) error
}

// Factory builds a system from its dependencies.
type Factory struct {
	Name        string
	Description string
	New         func(ctx context.Context, deps *Deps) (System, error)
}

// BodyLimiter is implemented by a system whose requests may be larger than
// --max-body (uploads); the larger limit then applies to its routes, and
// the system bounds each route itself.
type BodyLimiter interface {
	MaxBody() int64
}
