package main

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
)

// BenchmarkTwoStageProcessesPinned: 8 greedy generations at once through two node processes
// holding half the model each, against one generation alone, each process pinned to a core
// of its own (taskset), as two machines would each run their stage: aggregate tokens/s on the
// small preset (96 tokens each) and the base one (128). The node package's
// BenchmarkConcurrentGenerationsTwoStages runs both nodes in one process on the same cores.
func BenchmarkTwoStageProcessesPinned(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("needs two cores")
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		b.Skip("needs taskset (util-linux)")
	}
	for _, c := range []struct {
		model  string
		tokens int
	}{{"neuroshard-small", 96}, {"neuroshard-base", 128}} {
		b.Run(c.model, func(b *testing.B) {
			m, err := layers.Preset(c.model)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			common := []string{"--log-level", "info", "--model", c.model, "--token", "tok", "--rate-limit", "inference=0", "--rate-limit", "status=0", "--audit", "off"}
			pin0, pin1 := []string{taskset, "-c", "0"}, []string{taskset, "-c", "1"}
			first := startNodeUnder(b, pin0, b.TempDir(), freeAPIPort(b), append(common, "--layers", fmt.Sprintf("0-%d", m.Layers/2-1))...)
			api := client.New(first.api, "tok")
			st, err := api.Status(ctx)
			if err != nil {
				b.Fatal(err)
			}
			startNodeUnder(b, pin1, b.TempDir(), freeAPIPort(b), append(common, "--layers", fmt.Sprintf("%d-%d", m.Layers/2, m.Layers-1), "--bootstrap", st.Multiaddrs[0])...)
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if cov, err := api.Coverage(ctx); err == nil && cov.Complete {
					break
				}
				if time.Now().After(deadline) {
					b.Fatal("coverage never complete")
				}
			}
			run := func(n int) float64 {
				var wg sync.WaitGroup
				errs := make(chan error, n)
				start := time.Now()
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						last, err := api.InferenceStream(ctx, greedyRequest("First Citizen:", c.tokens), func(apitypes.TokenEvent) error { return nil })
						if err == nil && last.Usage.CompletionTokens != c.tokens {
							err = fmt.Errorf("%d tokens, want %d", last.Usage.CompletionTokens, c.tokens)
						}
						errs <- err
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
				return float64(n*c.tokens) / time.Since(start).Seconds()
			}
			run(1) // compile every batch size's graphs
			run(8)
			for range b.N {
				// Five runs each, interleaved: the figures move a lot from run to run here
				// (8 at once on the small preset 1,000-4,800 tokens/s), so the median is
				// reported, with the spread.
				var ones, eights []float64
				for range 5 {
					ones, eights = append(ones, run(1)), append(eights, run(8))
				}
				slices.Sort(ones)
				slices.Sort(eights)
				one, eight := ones[2], eights[2]
				b.Logf("two pinned processes, %s: 1 generation %.1f tok/s (%.0f-%.0f), 8 at once %.1f tok/s in all (%.0f-%.0f): x%.2f (medians)",
					c.model, one, ones[0], ones[4], eight, eights[0], eights[4], eight/one)
				b.ReportMetric(eight/one, "8-vs-1")
			}
		})
	}
}
