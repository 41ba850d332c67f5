// Command scalelab runs the classic scalable distributed systems: see
// `scalelab --help` and README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/scalelab/scalelab/internal/cli"
)

func main() {
	// The first SIGINT/SIGTERM starts a graceful shutdown (in-flight requests
	// finish, buffers flush, engines close); a second one forces the exit.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "scalelab: shutting down gracefully (press Ctrl-C again to force)")
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "scalelab: forced exit")
		os.Exit(130)
	}()
	os.Exit(cli.Run(ctx, os.Args, os.Stdout, os.Stderr))
}
