package crawler

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// Config is one crawler process.
type Config struct {
	Engine   EngineConfig
	WorkerID host.WorkerConfig
}

// DefaultConfig crawls the open web: no private or loopback address.
func DefaultConfig() Config { return Config{Engine: DefaultEngineConfig()} }

// System is the crawler in a host.
type System struct {
	eng   *Engine
	ids   *snowflake.LeasedGenerator
	admin *auth.AdminToken
}

var _ host.System = (*System)(nil)

// Factory registers the crawler with the host.
func Factory(cfg Config) host.Factory {
	return host.Factory{Name: "crawler", Description: description,
		New: func(ctx context.Context, d *host.Deps) (host.System, error) { return New(ctx, d, cfg) }}
}

// New opens the crawler's store and resumes the crawls it shows running.
func New(ctx context.Context, d *host.Deps, cfg Config) (*System, error) {
	if d.Blob == nil {
		return nil, fmt.Errorf("crawler: needs the blob store")
	}
	ids, err := d.NewGenerator(ctx, "crawler", cfg.WorkerID, snowflake.Config{})
	if err != nil {
		return nil, fmt.Errorf("crawler: %w", err)
	}
	newID := func() (int64, error) {
		id, err := ids.Next()
		return int64(id), err
	}
	eng, err := NewEngine(ctx, d.DB, d.Blob, cfg.Engine, d.Logger, newID)
	if err != nil {
		_ = ids.Close(ctx)
		return nil, err
	}
	for _, p := range cfg.Engine.AllowNets {
		if p.Addr().IsLoopback() || p.Addr().IsPrivate() {
			d.Logger.Warn("crawler: the SSRF guard lets private or loopback addresses through", "prefix", p)
		}
	}
	if err := eng.ResumeAll(ctx); err != nil {
		eng.Close()
		_ = ids.Close(ctx)
		return nil, err
	}
	return &System{eng: eng, ids: ids, admin: d.Admin}, nil
}

// Engine is the system's crawl engine.
func (s *System) Engine() *Engine { return s.eng }

// Name implements host.System.
func (s *System) Name() string { return "crawler" }

// Description implements host.System.
func (s *System) Description() string { return description }

// Checks implements host.System.
func (s *System) Checks() []httpx.Check {
	return []httpx.Check{{Name: "worker-id", Fn: s.ids.Ready}}
}

// Close implements host.System: crawls stop where they are and resume at
// the next start.
func (s *System) Close(ctx context.Context) error {
	s.eng.Close()
	return s.ids.Close(ctx)
}

// UpConfig is the crawler as `scalelab up` runs it: the open web, unless
// told a DNS server and private prefixes to allow (the synthetic web's).
func UpConfig(dnsServer string, allowNets []string) (Config, error) {
	cfg := DefaultConfig()
	nets, err := parsePrefixes(allowNets)
	if err != nil {
		return cfg, err
	}
	cfg.Engine.DNSServer, cfg.Engine.AllowNets = dnsServer, nets
	return cfg, nil
}

// parsePrefixes reads --allow-net values.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--allow-net %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
