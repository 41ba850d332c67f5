package host

import (
	"context"
	"log/slog"
	"testing"
)

// An engine that fails to open leaves an error, not a panic: what was
// opened before it is closed, and what failed is not touched.
func TestOpenFailsCleanlyOnAnEngineThatDoesNotOpen(t *testing.T) {
	for name, e := range map[string]Engines{
		"cache":  {Cache: "redis://127.0.0.1:1"},
		"broker": {Broker: "nats://127.0.0.1:1"},
		"blob":   {Blob: "ftp://nowhere"},
	} {
		t.Run(name, func(t *testing.T) {
			e.Data = t.TempDir()
			d, err := Open(context.Background(), e, slog.New(slog.DiscardHandler))
			if err == nil {
				d.Close()
				t.Fatalf("opened with a %s that cannot open", name)
			}
		})
	}
}
