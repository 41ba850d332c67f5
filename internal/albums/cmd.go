package albums

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/host"
)

// Command is the `scalelab albums` command group.
func Command() *cobra.Command {
	root := &cobra.Command{Use: "albums", Short: description}
	cfg := DefaultConfig()
	root.AddCommand(host.ServeCommand("Serve the album store: uploads, cached reads, images with Range, reviews over the broker", "127.0.0.1:8092",
		func(f *pflag.FlagSet) {
			f.Int64Var(&cfg.MaxImage, "max-image", cfg.MaxImage, "largest accepted cover image, bytes")
			f.DurationVar(&cfg.CacheTTL, "cache-ttl", cfg.CacheTTL, "how long album reads stay cached")
			f.Int64Var(&cfg.ResponseCacheBytes, "response-cache", cfg.ResponseCacheBytes, "bytes of encoded album answers kept in process (albums never change)")
			f.DurationVar(&cfg.ReviewsTTL, "reviews-cache-ttl", cfg.ReviewsTTL, "how long review counts stay cached (the consumer invalidates them; this bounds a read that raced it)")
			f.DurationVar(&cfg.DBTimeout, "db-timeout", cfg.DBTimeout, "deadline of each database call on a request")
			f.IntVar(&cfg.ReviewBatch, "review-batch", cfg.ReviewBatch, "reviews applied per transaction at most")
			f.DurationVar(&cfg.ReviewWait, "review-wait", cfg.ReviewWait, "how long a review waits for its batch to fill")
			f.BoolVar(&cfg.ConsumeReview, "consume-reviews", cfg.ConsumeReview, "apply reviews in this process (one consumer-group member)")
			f.DurationVar(&cfg.DedupeWindow, "review-dedupe-window", cfg.DedupeWindow, "how long applied review IDs are remembered to skip redeliveries (must exceed the broker's longest redelivery delay; 0 = forever)")
			f.DurationVar(&cfg.PruneEvery, "review-prune-every", cfg.PruneEvery, "how often IDs older than the dedupe window are deleted")
			f.DurationVar(&cfg.CollectEvery, "orphan-collect-every", cfg.CollectEvery, "how often images that no album points at (a crash between image and row) are deleted; 0: never")
			f.DurationVar(&cfg.OrphanGrace, "orphan-grace", cfg.OrphanGrace, "an image younger than this is never collected (it may belong to an upload in progress)")
			f.DurationVar(&cfg.Publish.Timeout, "publish-timeout", cfg.Publish.Timeout, "deadline of one review publish to the broker")
			f.DurationVar(&cfg.Publish.BreakerDelay, "breaker-delay", cfg.Publish.BreakerDelay, "how long the broker's breaker stays open before probing")
			cfg.Worker.BindFlags(f)
		},
		func() host.Factory { return Factory(cfg) }))
	return root
}
