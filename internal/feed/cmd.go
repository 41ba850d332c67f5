package feed

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/feed/timeline"
	"github.com/scalelab/scalelab/internal/platform/host"
)

// Command is the `scalelab feed` command group.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "feed",
		Short: description,
	}
	root.AddCommand(serveCommand(), loadCommand())
	return root
}

// modeFlag is a timeline mode as a flag.
type modeFlag struct{ m *timeline.Mode }

func (f modeFlag) String() string { return f.m.String() }
func (f modeFlag) Type() string   { return "mode" }
func (f modeFlag) Set(s string) error {
	m, ok := timeline.ParseMode(s)
	if !ok || m == timeline.Inherit {
		return fmt.Errorf("want push, pull or hybrid")
	}
	*f.m = m
	return nil
}

// BindFlags adds the feed's own flags.
func (c *Config) BindFlags(f *pflag.FlagSet, prefix string) {
	f.Var(modeFlag{&c.Mode}, prefix+"mode", "timelines: push (fan-out on write), pull (merge on read) or hybrid (push, but pull accounts with many followers)")
	f.IntVar(&c.Celebrity, prefix+"celebrity", c.Celebrity, "hybrid pulls accounts with at least this many followers")
	f.IntVar(&c.BatchSize, prefix+"batch", c.BatchSize, "followers one fan-out job writes to")
	f.IntVar(&c.Workers, prefix+"workers", c.Workers, "fan-out workers in this process")
	f.IntVar(&c.TimelineCap, prefix+"timeline-cap", c.TimelineCap, "entries a cached home timeline keeps")
	f.IntVar(&c.TimelineSets, prefix+"timeline-sets", c.TimelineSets, "home timelines the in-process cache keeps (least recently used go first)")
	f.StringVar(&c.WriteLimit, prefix+"write-limit", c.WriteLimit, "each user's limit on writes, COUNT/UNIT[:BURST] or off")
	f.StringVar(&c.SignupLimit, prefix+"signup-limit", c.SignupLimit, "each client address's limit on sign-ups, COUNT/UNIT[:BURST] or off")
	f.DurationVar(&c.TimelineTTL, prefix+"timeline-ttl", c.TimelineTTL, "an unread home timeline leaves the cache after this long")
}

func serveCommand() *cobra.Command {
	cfg := DefaultConfig()
	return host.ServeCommand("Serve the news feed: its API, its fan-out workers and its web app at /app/", "127.0.0.1:8091",
		func(f *pflag.FlagSet) {
			cfg.BindFlags(f, "")
			cfg.Worker.BindFlags(f)
		},
		func() host.Factory { return Factory(cfg) })
}
