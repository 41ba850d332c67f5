package cli

import (
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

func upCommand() *cobra.Command {
	var e host.Engines
	var origins string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start every system in one process on embedded defaults, with a dashboard at /",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var patterns []string
			if origins != "" {
				patterns = strings.Split(origins, ",")
			}
			return Up(cmd.Context(), e, systemsWith(patterns), host.Logger(cmd.ErrOrStderr(), e.Debug), nil)
		},
	}
	e.BindFlags(cmd.Flags(), "127.0.0.1:8080")
	cmd.Flags().StringVar(&origins, "allowed-origins", "", "comma-separated host patterns of cross-origin pages allowed to open the chat's WebSockets (its own page, /chat/page, is same-origin)")
	return cmd
}

// SystemInfo is one entry of GET /api/systems.
type SystemInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	BaseURL     string `json:"base_url"`
	Requests    uint64 `json:"requests"`
}

// Up runs the given systems, each under /<name>/, on one server with shared
// engines until ctx ends. ready, if not nil, gets the base URL once bound.
func Up(ctx context.Context, e host.Engines, factories []host.Factory, logger *slog.Logger, ready func(url string)) error {
	// Bind first: a bad or busy address must leave nothing behind (no
	// ./data, no files).
	srv, err := host.Listen(e, logger)
	if err != nil {
		return err
	}
	d, err := host.Open(ctx, e, logger)
	if err != nil {
		srv.Close()
		return err
	}
	base := d.PublicURL(srv)
	mux := http.NewServeMux()
	var started []host.System
	fail := func(err error) error {
		for _, s := range started {
			_ = s.Close(context.Background())
		}
		srv.Close()
		d.Close()
		return err
	}
	for _, f := range factories {
		sd := *d
		sd.BaseURL = base + "/" + f.Name
		sys, err := f.New(ctx, &sd)
		if err != nil {
			return fail(fmt.Errorf("start %s: %w", f.Name, err))
		}
		started = append(started, sys)
		prefix := "/" + sys.Name()
		mux.Handle(prefix+"/", http.StripPrefix(prefix, d.Instrument(sys)))
	}
	dash := &dashboard{base: base, systems: started, metrics: d.Metrics}
	mux.HandleFunc("GET /{$}", dash.page)
	mux.HandleFunc("GET /api/systems", dash.list)
	if ready != nil {
		ready(base)
	}
	logger.Info("scalelab is up", "dashboard", base+"/", "systems", len(started))
	return host.Run(ctx, d, srv, started, httpx.JSONErrors(mux))
}

type dashboard struct {
	base    string
	systems []host.System
	metrics *httpx.Metrics
}

func (d *dashboard) infos() []SystemInfo {
	out := make([]SystemInfo, len(d.systems))
	for i, s := range d.systems {
		out[i] = SystemInfo{Name: s.Name(), Description: s.Description(),
			BaseURL: d.base + "/" + s.Name(), Requests: d.metrics.Requests(s.Name())}
	}
	return out
}

func (d *dashboard) list(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"systems": d.infos()})
}

//go:embed dashboard.html
var dashboardHTML string

var dashboardTmpl = template.Must(template.New("dashboard").Parse(dashboardHTML))

func (d *dashboard) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := dashboardTmpl.Execute(w, d.infos()); err != nil {
		slog.Warn("dashboard render", "err", err)
	}
}
