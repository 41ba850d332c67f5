package idgen

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// Command is the `scalelab idgen` command group.
func Command() *cobra.Command {
	root := &cobra.Command{
		Use:   "idgen",
		Short: "Snowflake IDs: serve them over HTTP, or decode one",
	}
	root.AddCommand(serveCommand(), decodeCommand())
	return root
}

func serveCommand() *cobra.Command {
	cfg := DefaultConfig()
	return host.ServeCommand("Serve GET /api/v1/ids and GET /api/v1/ids/{id}", "127.0.0.1:8081",
		func(f *pflag.FlagSet) {
			cfg.Worker.BindFlags(f)
			f.DurationVar(&cfg.MaxBackward, "max-backward", cfg.MaxBackward, "largest backward clock step to wait out; beyond it requests fail")
		},
		func() host.Factory { return Factory(cfg) })
}

func decodeCommand() *cobra.Command {
	var base62 bool
	cmd := &cobra.Command{
		Use:   "decode ID",
		Short: "Print the time, worker and sequence of an ID (decimal, or base62 with --base62)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id snowflake.ID
			if base62 {
				n, err := snowflake.DecodeBase62(strings.TrimSpace(args[0]))
				if err != nil {
					return err
				}
				if n > 1<<63-1 {
					return fmt.Errorf("%w: base62 %q is above the largest 63-bit ID", snowflake.ErrInvalidID, args[0])
				}
				id = snowflake.ID(n)
			} else {
				var err error
				if id, err = snowflake.Parse(strings.TrimSpace(args[0])); err != nil {
					return err
				}
			}
			d, err := DecodeID(id)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(d)
		},
	}
	cmd.Flags().BoolVar(&base62, "base62", false, "the ID is in base62")
	return cmd
}
