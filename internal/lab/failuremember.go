package lab

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/scalelab/scalelab/internal/lab/detect"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
)

// memberCommand is the process the failure-detection experiment pauses:
// one SWIM member that also sends plain heartbeats. It prints
// "ready GOSSIP-ADDR" once it has joined, and exits when its standard
// input closes (its parent is gone) or at SIGTERM.
func memberCommand() *cobra.Command {
	var name, join, heartbeatTo, keyFile string
	var interval time.Duration
	var mult int
	cmd := &cobra.Command{Use: "member", Hidden: true, Args: cobra.NoArgs,
		Short: "A SWIM member that also sends heartbeats (the failure-detection experiment runs it)"}
	cmd.Flags().StringVar(&name, "name", "", "member name")
	cmd.Flags().StringVar(&join, "join", "", "gossip address of a member")
	cmd.Flags().StringVar(&heartbeatTo, "heartbeat-to", "", "UDP address of the heartbeat observer")
	cmd.Flags().StringVar(&keyFile, "cluster-key", os.Getenv("SCALELAB_CLUSTER_KEY"), "cluster key file")
	cmd.Flags().DurationVar(&interval, "probe-interval", 200*time.Millisecond, "SWIM probe and heartbeat interval")
	cmd.Flags().IntVar(&mult, "suspicion-mult", 4, "SWIM suspicion multiplier")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if name == "" || join == "" || heartbeatTo == "" || len(name) > 64 || strings.ContainsAny(name, " \n") {
			return apperr.Usagef("want --name (≤ 64 bytes, no spaces), --join and --heartbeat-to")
		}
		key, err := auth.LoadKey(keyFile)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		ml, err := detect.StartSWIM(detect.SWIMConfig{Name: name, Host: "127.0.0.1", ProbeInterval: interval, SuspicionMult: mult, Key: key}, []string{join})
		if err != nil {
			return err
		}
		defer func() { _ = ml.Shutdown() }()
		go func() { _ = detect.SendHeartbeats(ctx, key, name, heartbeatTo, interval, nil, nil) }()
		fmt.Fprintf(cmd.OutOrStdout(), "ready %s\n", detect.Addr(ml))
		go func() { // the parent's end of stdin closes when it goes
			_, _ = bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			stop()
		}()
		<-ctx.Done()
		return nil
	}
	return cmd
}
