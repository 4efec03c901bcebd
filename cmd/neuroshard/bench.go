package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/neuroshard/neuroshard/layers"
	"github.com/urfave/cli/v2"

	"github.com/neuroshard/neuroshard/layers/cpu"
)

// benchCommand measures the model on this machine, as a node does at its first start but in
// full: forward, train step, decode at batch 1 and 8, prefill.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure this machine's throughput on a model preset (tokens per second)",
		Description: `Runs the preset with its deterministic initial weights: forward of 8 x 128 tokens,
a training step on 8 x 64 (forward, backward, AdamW), greedy decoding of 256 tokens with the
KV cache at batch 1 and at batch 8, and the prefill of a 256-token prompt.

The cpu backend runs the best product kernel this CPU has (avx512, avx2, or go without
assembly); NEUROSHARD_KERNEL=avx2 (or go) runs another, for the same bits.

Examples:
   neuroshard bench
   neuroshard bench --preset neuroshard-base --json
   neuroshard bench --backend cpu:threads=1 --short
   NEUROSHARD_KERNEL=avx2 neuroshard bench --short`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "preset", Value: layers.DefaultModel, Usage: "model preset: " + strings.Join(layers.PresetNames(), ", ")},
			&cli.StringFlag{Name: "backend", Value: layers.BackendCPU, Usage: "compute backend: cpu, cpu:threads=N or simplego"},
			&cli.BoolFlag{Name: "short", Usage: "each workload once, on fewer tokens (what a node measures at its first start)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of a table"},
		},
		Action: func(c *cli.Context) error {
			cfg, err := layers.Preset(c.String("preset"))
			if err != nil {
				return err
			}
			if err := layers.SetBackend(c.String("backend")); err != nil {
				return fmt.Errorf("--backend: %w", err)
			}
			progress := func(w string) { fmt.Fprintf(os.Stderr, "measuring %s...\n", w) }
			r, err := layers.Bench(cfg, layers.BenchOptions{Short: c.Bool("short"), Progress: progress, Ctx: c.Context})
			if err != nil {
				return err
			}
			out := c.App.Writer
			if c.Bool("json") {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			kernel := ""
			if strings.HasPrefix(r.Backend, layers.BackendCPU) {
				kernel = " (" + cpu.Kernel() + " kernel)"
			}
			fmt.Fprintf(out, "%s on %s%s, %d threads\n", r.Preset, r.Backend, kernel, r.Threads)
			for _, row := range []struct {
				name string
				v    float64
			}{
				{"forward, batch 8 x 128", r.Forward},
				{"train step, batch 8 x 64", r.Train},
				{"decode, batch 1", r.Decode},
				{"decode, batch 8 (all sequences)", r.DecodeBatch8},
				{"prefill, 256-token prompt", r.Prefill},
			} {
				fmt.Fprintf(out, "  %-34s %10.1f tokens/s\n", row.name, row.v)
			}
			return nil
		},
	}
}
