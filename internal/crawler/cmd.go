package crawler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/crawler/testweb"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
)

const description = "Web crawler: a Mercator frontier, politeness from robots.txt, and the synthetic web it is checked on"

// Command is the `scalelab crawler` command group.
func Command() *cobra.Command {
	root := &cobra.Command{Use: "crawler", Short: description}
	cfg := DefaultConfig()
	var allow []string
	serve := host.ServeCommand("Serve the crawler: the crawl API (create, pause, resume, stop, stats, search) and its fetchers", "127.0.0.1:8100",
		func(f *pflag.FlagSet) {
			f.StringVar(&cfg.Engine.DNSServer, "dns-server", cfg.Engine.DNSServer, "ask this DNS server (host:port) instead of the system's resolver (the synthetic web's: 127.0.0.1:8353)")
			f.DurationVar(&cfg.Engine.DNSTTL, "dns-ttl", cfg.Engine.DNSTTL, "how long a DNS answer is kept")
			f.StringSliceVar(&allow, "allow-net", nil, "let the SSRF guard through to this private or loopback prefix (the synthetic web's: 127.20.0.0/16)")
			f.DurationVar(&cfg.Engine.Fetch.Timeout, "fetch-timeout", cfg.Engine.Fetch.Timeout, "a fetch's deadline, head and body")
			f.Int64Var(&cfg.Engine.Fetch.MaxBody, "max-page-bytes", cfg.Engine.Fetch.MaxBody, "bytes of a body kept; longer bodies are cut")
			f.DurationVar(&cfg.Engine.RobotsTTL, "robots-ttl", cfg.Engine.RobotsTTL, "how long a host's robots.txt is obeyed before it is fetched again")
			f.StringVar(&cfg.Engine.Instance, "instance", "", "this crawler's name among those sharing the store (default: host, pid and random bytes)")
			f.DurationVar(&cfg.Engine.Lease, "lease", cfg.Engine.Lease, "how long a shard's lease runs unrenewed: how long a crawler that died keeps its hosts from the others (at least twice --fetch-timeout)")
			cfg.WorkerID.BindFlags(f)
		}, func() host.Factory {
			nets, err := parsePrefixes(allow)
			if err != nil {
				return host.Factory{Name: "crawler", New: func(context.Context, *host.Deps) (host.System, error) { return nil, apperr.Usage(err) }}
			}
			cfg.Engine.AllowNets = nets
			return Factory(cfg)
		})
	root.AddCommand(serve, testwebCommand())
	return root
}

func testwebCommand() *cobra.Command {
	cfg := testweb.DefaultConfig()
	cfg.Hosts, cfg.PagesPerHost = 2000, 100
	var base, dnsAddr, control string
	var port int
	cmd := &cobra.Command{Use: "testweb", Args: cobra.NoArgs,
		Short: "Serve the synthetic web: virtual hosts on loopback addresses, their name server, and the fetch log with its checker",
		Long: `Serve the synthetic web the crawler is tested and measured on. Host i (hostI.test) listens on
--base-ip + i + 1 at --port; --dns resolves the names. The control address serves:
  GET /check?delay=20ms   robots, politeness and duplicate violations counted from the fetch log
  GET /log                the fetch log, one JSON object a line
  POST /reset             empty the log (between crawls)`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ip, err := netip.ParseAddr(base)
			if err != nil {
				return apperr.Usagef("--base-ip: %v", err)
			}
			web, err := testweb.New(cfg)
			if err != nil {
				return apperr.Usagef("%v", err)
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			srv, err := testweb.Start(web, testweb.ServeConfig{BaseIP: ip, Port: port}, logger)
			if err != nil {
				return err
			}
			defer srv.Close()
			dns, err := srv.ServeDNS(dnsAddr)
			if err != nil {
				return err
			}
			defer dns.Close()
			ctl := httpx.NewServer(httpx.ServerConfig{Addr: control}, controlHandler(srv), logger)
			if err := ctl.Listen(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "testweb: %d hosts × %d pages on %v… port %d; dns %s; control http://%s; seed %s\n",
				cfg.Hosts, cfg.PagesPerHost, srv.Addr(0), srv.Port(), dns.Addr(), ctl.Addr(), web.HomeURL(0))
			return ctl.Serve(cmd.Context())
		}}
	f := cmd.Flags()
	f.IntVar(&cfg.Hosts, "hosts", cfg.Hosts, "virtual hosts")
	f.IntVar(&cfg.PagesPerHost, "pages-per-host", cfg.PagesPerHost, "ordinary pages per host")
	f.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "the link graph's seed")
	f.DurationVar(&cfg.CrawlDelay, "crawl-delay", cfg.CrawlDelay, "the Crawl-delay of the hosts that ask for one")
	f.DurationVar(&cfg.Slow, "slow", cfg.Slow, "how long the slow page and a timing-out robots.txt take")
	f.IntVar(&cfg.HugeBytes, "huge-bytes", cfg.HugeBytes, "size of the huge page")
	f.StringVar(&base, "base-ip", "127.20.0.0", "host i listens on this address + i + 1 (IPv4 loopback)")
	f.IntVar(&port, "port", 8380, "every host's port (0: a free one)")
	f.StringVar(&dnsAddr, "dns", "127.0.0.1:8353", "the name server's UDP address")
	f.StringVar(&control, "control", "127.0.0.1:8381", "the control API's address")
	return cmd
}

func controlHandler(srv *testweb.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpx.WriteJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /check", func(w http.ResponseWriter, r *http.Request) {
		rules := testweb.Rules{Slack: time.Millisecond}
		for name, d := range map[string]*time.Duration{"delay": &rules.Delay, "slack": &rules.Slack} {
			if v := r.URL.Query().Get(name); v != "" {
				var err error
				if *d, err = time.ParseDuration(v); err != nil || *d < 0 {
					httpx.WriteError(w, r, apperr.E(apperr.Invalid, "%s: a duration ≥ 0, like 20ms", name))
					return
				}
			}
		}
		httpx.WriteJSON(w, 200, srv.Web().Check(srv.Log().Fetches(), rules))
	})
	mux.HandleFunc("GET /log", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, f := range srv.Log().Fetches() {
			if enc.Encode(f) != nil {
				return
			}
		}
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		srv.Log().Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
