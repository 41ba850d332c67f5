package lab

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scalelab/scalelab/internal/dynamo"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/raftkv"
	"github.com/scalelab/scalelab/internal/shop/cascade"
)

// Catalog is every experiment, in the order `experiment list` shows them.
func Catalog() []Experiment {
	return []Experiment{capExperiment(), linearizabilityExperiment(), cascadeExperiment(), concurrencyExperiment(), clientReuseExperiment(), recoveryExperiment(), consistencyExperiment(), failureDetectionExperiment(), lbAlgorithmsExperiment(), scaleOutExperiment(), flashSaleExperiment(), mapReduceExperiment(), crawlerExperiment(), feedExperiment(), storageEnginesExperiment()}
}

func capExperiment() Experiment {
	return Experiment{
		Name: "cap", System: "dynamo+raftkv",
		Summary: "A partition in the middle of a write load, dynamo and raftkv side by side: availability with siblings, or consistency with a side that refuses?",
		Quick:   map[string]string{"duration": "2s"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := dynamo.CAPOptions{Duration: 6 * time.Second, Keys: 10, W: 2}
			fs.DurationVar(&opts.Duration, "duration", opts.Duration, "length of the run (a third partitioned)")
			fs.IntVar(&opts.Keys, "keys", opts.Keys, "keys both clients write")
			fs.IntVar(&opts.W, "w", opts.W, "write quorum")
			return func(ctx context.Context, env Env) (*Report, error) {
				if opts.Keys < 1 || opts.W < 1 || opts.W > 3 || opts.Duration < 300*time.Millisecond {
					return nil, apperr.Usagef("want --keys ≥ 1, 1 ≤ --w ≤ 3, --duration ≥ 300ms")
				}
				var log strings.Builder
				res, err := dynamo.RunCAP(ctx, teeWriter{env.Log, &log}, opts)
				if err != nil && res.AckedWrites == 0 {
					return nil, err
				}
				r := capReport(opts, res)
				r.Passed = r.Passed && err == nil
				fmt.Fprintf(env.Log, "\nraftkv, the same partition {1,2} | {3,4,5} for %v:\n", opts.Duration)
				raft, err := runRaftCAP(ctx, env.Dir, opts.Duration)
				if err != nil {
					return nil, err
				}
				for i, name := range []string{"healthy", "partitioned", "healed"} {
					line := fmt.Sprintf("%-12s minority %4d of %4d acked (%d later)   majority %4d of %4d acked (%d later)\n", name,
						raft.Minority[i].Acks, raft.Minority[i].Attempts, raft.Minority[i].Late, raft.Majority[i].Acks, raft.Majority[i].Attempts, raft.Majority[i].Late)
					fmt.Fprint(env.Log, line)
					log.WriteString("raftkv " + line)
				}
				raftCAPLesson(r, raft)
				r.Plots = capPlots(res, raft)
				r.System = "dynamo+raftkv"
				r.Body = "# The CAP experiment (dynamo and raftkv)\n\n```\n" + log.String() + "```\n\n" + lessonMarkdown(r)
				return r, nil
			}
		},
	}
}

// capReport states the CAP lesson from one run's figures.
func capReport(opts dynamo.CAPOptions, res dynamo.CAPResult) *Report {
	r := &Report{Experiment: "cap", System: "dynamo", Figures: map[string]float64{}}
	for _, p := range res.Phases {
		key := strings.Fields(p.Name)[0]
		r.Figures[key+"_writes"] = float64(p.Attempts)
		r.Figures[key+"_acked"] = float64(p.Acks)
		r.Figures[key+"_sibling_reads"] = float64(p.SiblingReads)
	}
	r.Figures["acked_writes"], r.Figures["lost_writes"] = float64(res.AckedWrites), float64(res.LostWrites)
	r.Figures["keys_with_siblings_at_end"] = float64(res.KeysWithSibs)
	r.Figures["hints_stored"], r.Figures["hints_handed_on"] = float64(res.HintsStored), float64(res.HintsHandedOn)
	part := res.Phases[1]
	if part.Attempts > 0 {
		avail := 100 * float64(part.Acks) / float64(part.Attempts)
		if avail >= 99 {
			r.Lesson = append(r.Lesson, fmt.Sprintf("Dynamo chose availability: during the partition %d of %d writes (%.1f %%) were acknowledged on both sides, with W=%d met by stand-ins holding hints (%d stored).",
				part.Acks, part.Attempts, avail, opts.W, res.HintsStored))
		} else {
			r.Lesson = append(r.Lesson, fmt.Sprintf("During the partition only %d of %d writes (%.1f %%) were acknowledged: with W=%d a side without enough reachable nodes refuses writes — availability was given up there.",
				part.Acks, part.Attempts, avail, opts.W))
		}
	}
	healed := res.Phases[2]
	if healed.SiblingReads > 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("The price is conflicts: after the heal, reads returned the two sides' concurrent writes as siblings %d times, instead of one side's writes silently winning.", healed.SiblingReads))
	} else {
		r.Lesson = append(r.Lesson, "No read after the heal saw siblings: the two sides did not write the same keys concurrently in this run (too short or too light to show the cost).")
	}
	switch {
	case res.KeysWithSibs == 0:
		r.Lesson = append(r.Lesson, fmt.Sprintf("Clients that write back with the merged context resolve the conflicts: at the end none of the %d keys holds siblings.", opts.Keys))
	default:
		r.Lesson = append(r.Lesson, fmt.Sprintf("%d of %d keys still hold siblings after the clients wrote back with the merged context: resolution did not converge.", res.KeysWithSibs, opts.Keys))
	}
	if res.LostWrites == 0 {
		r.Lesson = append(r.Lesson, fmt.Sprintf("No acknowledged write was lost (%d acknowledged): each is in the final value or was read by a later write that replaced it.", res.AckedWrites))
	} else {
		r.Lesson = append(r.Lesson, fmt.Sprintf("%d of %d acknowledged writes were lost.", res.LostWrites, res.AckedWrites))
	}
	r.Passed = res.LostWrites == 0 && res.KeysWithSibs == 0
	return r
}

func linearizabilityExperiment() Experiment {
	return Experiment{
		Name: "linearizability", System: "raftkv",
		Summary: "Real raftkv processes partitioned, killed and paused under concurrent clients: is every history linearizable (Porcupine)?",
		Quick:   map[string]string{"duration": "8s", "clients": "3"},
		Bind: func(fs *pflag.FlagSet) Runner {
			opts := raftkv.CheckOptions{Nodes: 3, Duration: 30 * time.Second, Clients: 4, Seed: 1}
			var faults string
			fs.IntVar(&opts.Nodes, "nodes", opts.Nodes, "nodes (processes)")
			fs.DurationVar(&opts.Duration, "duration", opts.Duration, "length of the run")
			fs.StringVar(&faults, "faults", "partition,kill,pause", "faults to inject: partition, kill, pause (comma-separated; none for no faults)")
			fs.IntVar(&opts.Clients, "clients", opts.Clients, "concurrent clients")
			fs.Uint64Var(&opts.Seed, "seed", opts.Seed, "seed of the fault schedule and the clients' operations")
			return func(ctx context.Context, env Env) (*Report, error) {
				opts.Faults = nil
				for _, f := range strings.Split(faults, ",") {
					switch f = strings.TrimSpace(f); f {
					case "partition", "kill", "pause":
						opts.Faults = append(opts.Faults, f)
					case "", "none":
					default:
						return nil, apperr.Usagef("--faults: %q is not one of partition, kill, pause", f)
					}
				}
				if opts.Nodes < 3 || opts.Clients < 1 || opts.Duration < 5*time.Second {
					return nil, apperr.Usagef("want --nodes ≥ 3, --clients ≥ 1, --duration ≥ 5s")
				}
				opts.Out, opts.Binary = env.Dir, env.Binary
				var log strings.Builder
				ok, err := raftkv.RunCheck(ctx, teeWriter{env.Log, &log}, opts)
				if err != nil {
					return nil, err
				}
				r := &Report{Experiment: "linearizability", System: "raftkv", Passed: ok, Figures: map[string]float64{
					"nodes": float64(opts.Nodes), "clients": float64(opts.Clients), "seconds": opts.Duration.Seconds()}}
				faultsSaid := strings.Join(opts.Faults, ", ")
				if faultsSaid == "" {
					faultsSaid = "no faults"
				}
				history := filepath.Join(env.Dir, "history.html")
				if ok {
					r.Lesson = []string{fmt.Sprintf("%d clients against %d real processes for %v, under %s: Porcupine found an order of every operation that agrees with each one's real-time interval and with a single-copy key-value store — the history is linearizable (%s).",
						opts.Clients, opts.Nodes, opts.Duration, faultsSaid, history)}
				} else {
					r.Lesson = []string{fmt.Sprintf("The history of %d clients against %d processes under %s is NOT linearizable: no single-copy order explains it. The operations that cannot be placed are drawn in %s.",
						opts.Clients, opts.Nodes, faultsSaid, history)}
				}
				r.Body = "# Linearizability under faults (raftkv)\n\n```\n" + log.String() + "```\n\n" + lessonMarkdown(r)
				return r, nil
			}
		},
	}
}

func cascadeExperiment() Experiment {
	return Experiment{
		Name: "cascade", System: "shop",
		Summary: "The shop's payment service stalls under steady load: how far does the failure spread, with resilience off and on?",
		Quick:   map[string]string{"duration": "14s", "stall-at": "2s", "stall-for": "4s"},
		Bind: func(fs *pflag.FlagSet) Runner {
			cfg := cascade.DefaultConfig()
			fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "load per mode")
			fs.DurationVar(&cfg.StallAt, "stall-at", cfg.StallAt, "when the payment service stalls")
			fs.DurationVar(&cfg.StallFor, "stall-for", cfg.StallFor, "how long it stays stalled")
			fs.Float64Var(&cfg.CatalogRate, "catalog-rate", cfg.CatalogRate, "catalog searches per second")
			fs.Float64Var(&cfg.CartRate, "cart-rate", cfg.CartRate, "cart creations per second")
			fs.Float64Var(&cfg.CheckoutRate, "checkout-rate", cfg.CheckoutRate, "checkouts per second")
			fs.DurationVar(&cfg.PaymentLatency, "payment-latency", cfg.PaymentLatency, "the downstream services' normal latency")
			fs.IntVar(&cfg.MaxInFlight, "max-in-flight", cfg.MaxInFlight, "the shop's request concurrency bound (both modes)")
			fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "the load generator gives up on a request after this")
			return func(ctx context.Context, env Env) (*Report, error) {
				cfg.Out, cfg.Binary = env.Dir, env.Binary
				cfg.Logf = func(format string, args ...any) { fmt.Fprintf(env.Log, format+"\n", args...) }
				results, err := cascade.Run(ctx, cfg)
				if err != nil {
					return nil, err
				}
				r := &Report{Experiment: "cascade", System: "shop", Passed: true, Lesson: cascade.Lesson(cfg, results), Figures: map[string]float64{}}
				for _, m := range results {
					mode := "resilience_off"
					if m.Protect {
						mode = "resilience_on"
					}
					r.Figures[mode+"_recovery_s"] = m.RecoveryS
					r.Figures[mode+"_peak_goroutines"] = float64(m.PeakGoros)
					for class, c := range m.Classes {
						r.Figures[mode+"_"+class+"_errors"] = float64(c.Errors)
						r.Figures[mode+"_"+class+"_requests"] = float64(c.Requests)
					}
				}
				return r, nil // cascade.Run wrote report.md, results.json and the plots
			}
		},
	}
}

// lessonMarkdown is the report's closing section.
func lessonMarkdown(r *Report) string {
	var b strings.Builder
	b.WriteString("## What this run shows\n\n")
	for _, s := range r.Lesson {
		b.WriteString("- " + s + "\n")
	}
	return b.String()
}
