// Package cli is the scalelab command line: the root command, `up`, and the
// command group each system exports. Adding a system means one line in
// systems() and one in Run.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/scalelab/scalelab/internal/albums"
	"github.com/scalelab/scalelab/internal/autoscale"
	"github.com/scalelab/scalelab/internal/console"
	"github.com/scalelab/scalelab/internal/lab"
	"github.com/scalelab/scalelab/internal/lb"
	"github.com/scalelab/scalelab/internal/shop"

	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/chat"
	"github.com/scalelab/scalelab/internal/crawler"
	"github.com/scalelab/scalelab/internal/dynamo"
	"github.com/scalelab/scalelab/internal/feed"
	"github.com/scalelab/scalelab/internal/flashsale"
	"github.com/scalelab/scalelab/internal/idgen"
	"github.com/scalelab/scalelab/internal/mapreduce"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/buildinfo"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/loadgen"
	"github.com/scalelab/scalelab/internal/raftkv"
	"github.com/scalelab/scalelab/internal/shortener"
)

// systems lists every system `up` starts, in dashboard order, each with the
// configuration it gets on embedded defaults.
func systems() []host.Factory { return systemsWith(nil, crawler.DefaultConfig(), "") }

// systemsWith are the systems of `up`; origins are the cross-origin pages
// the chat admits (its own page, at /chat/page, is same-origin).
func systemsWith(origins []string, crawlerCfg crawler.Config, raftkvEtcdAddr string) []host.Factory {
	chatCfg := chat.DefaultConfig()
	chatCfg.Server.OriginPatterns = origins
	return []host.Factory{
		idgen.Factory(idgen.DefaultConfig()),
		shortener.Factory(shortener.DefaultConfig()),
		dynamo.Factory(),
		raftkv.Factory(raftkvEtcdAddr),
		chat.Factory(chatCfg),
		albums.Factory(albums.DefaultConfig()),
		shop.Factory(shop.DefaultConfig()),
		flashsale.Factory(flashsale.DefaultConfig()),
		mapreduce.Factory(mapreduce.DefaultConfig()),
		crawler.Factory(crawlerCfg),
		feed.Factory(feed.DefaultConfig()),
	}
}

// Run executes the command line and returns the process exit code:
// 0 success, 1 failure, 2 bad usage.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:           "scalelab",
		Short:         "The classic scalable distributed systems, built for real: run them, load them, break them, measure them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Subcommands inherit the flag error function: every flag error exits 2.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error { return apperr.Usage(err) })
	load := loadgen.Command()
	load.AddCommand(chat.LoadCommand())
	dynamoCmd, raftkvCmd := dynamo.Command(), raftkv.Command()
	dynamoCmd.AddCommand(lab.Shortcut("cap", "cap"))
	raftkvCmd.AddCommand(lab.Shortcut("check", "linearizability"))
	root.AddCommand(upCommand(), idgen.Command(), shortener.Command(), dynamoCmd, raftkvCmd, chat.Command(), albums.Command(), shop.Command(), flashsale.Command(), mapreduce.Command(), crawler.Command(), feed.Command(), lab.Command(), lb.Command(), autoscale.Command(), load, clusterKeyCommand(), versionCommand())
	installConsole()
	root.SetArgs(args[1:])
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "scalelab: %v\n", err)
	if apperr.IsUsage(err) || isArgsError(err) {
		return 2
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}

// isArgsError recognises cobra's own argument-count and unknown-command errors.
func isArgsError(err error) bool {
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "unknown flag", "unknown shorthand"} {
		if strings.Contains(err.Error(), p) {
			return true
		}
	}
	return false
}

func clusterKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster-key",
		Short: "Print a new random cluster key (give every member the same file with --cluster-key)",
		Long: `Print a new random cluster key: 32 random bytes, base64.

Save it to a file readable only by the nodes' user, copy that file to every
member, and start each with --cluster-key FILE (or SCALELAB_CLUSTER_KEY=FILE).
Peers then talk over mutual TLS under a certificate authority derived from
the key, and gossip is encrypted with a key derived from it; a process
without the key is refused before it can send a message. See docs/security.md.`,
		Example: "  scalelab cluster-key > cluster.key && chmod 600 cluster.key",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), auth.NewKeyText())
			return err
		},
	}
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary: module, commit, Go",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildinfo.Version())
			return err
		},
	}
}

// installConsole makes every `<system> serve`, `dynamo node` and `raftkv
// node` show its console at /ui/.
func installConsole() {
	host.UI = func(ctx context.Context, base string, sys host.System, d *host.Deps) http.Handler {
		c := console.ForOne(base, sys, d)
		go c.Run(ctx)
		return c.Handler()
	}
	host.NodeUI = func(ctx context.Context, n host.NodeConsole) http.Handler {
		c := console.ForNode(n)
		go c.Run(ctx)
		return c.Handler()
	}
}
