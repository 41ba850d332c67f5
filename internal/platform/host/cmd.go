package host

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ServeCommand is the `serve` subcommand of a system: the shared engine
// flags (listening on defaultAddr unless told otherwise), the system's own
// flags, and ServeOne with the factory built after the flags are parsed.
func ServeCommand(short, defaultAddr string, systemFlags func(*pflag.FlagSet), factory func() Factory) *cobra.Command {
	var e Engines
	cmd := &cobra.Command{
		Use:   "serve",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ServeOne(cmd.Context(), e, Logger(cmd.ErrOrStderr(), e.Debug), factory().New, nil)
		},
	}
	e.BindFlags(cmd.Flags(), defaultAddr)
	systemFlags(cmd.Flags())
	return cmd
}
