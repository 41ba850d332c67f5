package chat

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

const description = "WebSocket chat: rooms fanned out through the broker, batch-persisted, with a query API"

// Config chooses the roles of one process and tunes them.
type Config struct {
	Serve     bool // WebSocket server and query API
	Persist   bool // persister
	Server    ServerConfig
	Persister PersisterConfig
	Worker    host.WorkerConfig
}

// DefaultConfig runs both roles, as `scalelab up` does.
func DefaultConfig() Config {
	return Config{Serve: true, Persist: true, Server: DefaultServerConfig(),
		Persister: DefaultPersisterConfig(), Worker: host.DefaultWorkerConfig()}
}

// Factory is the chat system for `scalelab up` and the serve commands.
func Factory(cfg Config) host.Factory {
	return host.Factory{
		Name:        "chat",
		Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) {
			return New(ctx, d, cfg)
		},
	}
}

// System is one process's share of the chat: a server, a persister, or both.
type System struct {
	cfg       Config
	store     *Store
	ids       *snowflake.LeasedGenerator
	server    *Server
	persister *Persister
	mux       *http.ServeMux
}

var _ host.System = (*System)(nil)

// New starts the roles cfg asks for on the engines of d.
func New(ctx context.Context, d *host.Deps, cfg Config) (_ *System, err error) {
	if !cfg.Serve && !cfg.Persist {
		return nil, errors.New("chat: nothing to run: neither serve nor persist")
	}
	s := &System{cfg: cfg, mux: http.NewServeMux()}
	defer func() {
		if err != nil {
			_ = s.Close(context.Background())
		}
	}()
	if s.store, err = OpenStore(ctx, d.DB); err != nil {
		return nil, err
	}
	if cfg.Persist {
		if s.persister, err = StartPersister(ctx, cfg.Persister, d.Broker, s.store, d.Registry, d.Logger); err != nil {
			return nil, err
		}
	}
	if cfg.Serve {
		if s.ids, err = d.NewGenerator(ctx, "chat", cfg.Worker, snowflake.Config{}); err != nil {
			return nil, fmt.Errorf("chat: %w", err)
		}
		if s.server, err = NewServer(ctx, cfg.Server, d.Broker, s.ids, d.Registry, d.Logger); err != nil {
			return nil, err
		}
		s.mux = s.routes()
	}
	return s, nil
}

// Name implements host.System.
func (s *System) Name() string { return "chat" }

// Description implements host.System.
func (s *System) Description() string { return description }

// Handler implements host.System.
func (s *System) Handler() http.Handler { return s.mux }

// Checks implements host.System.
func (s *System) Checks() []httpx.Check {
	if s.ids == nil {
		return nil
	}
	return []httpx.Check{{Name: "worker-id", Fn: s.ids.Ready}}
}

// Close closes connections (clients reconnect elsewhere), then flushes the
// persister's batch, then releases the worker ID.
func (s *System) Close(ctx context.Context) error {
	var errs []error
	if s.server != nil {
		errs = append(errs, s.server.Close(ctx))
	}
	if s.persister != nil {
		s.persister.Close()
	}
	if s.ids != nil {
		errs = append(errs, s.ids.Close(ctx))
	}
	return errors.Join(errs...)
}
