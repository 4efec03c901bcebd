package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/neuroshard/neuroshard/internal/sim"
)

func main() {
	peers := flag.String("peers", "100,300,1000", "swarm sizes, comma-separated (empty: no swarm, the rounds alone)")
	latency := flag.Duration("latency", 20*time.Millisecond, "one-way latency of every link")
	lookups := flag.Int("lookups", 50, "DHT lookups measured per size")
	messages := flag.Int("messages", 20, "gossip messages published per size")
	churn := flag.Float64("churn", 0.1, "share of the peers replaced during the churn phase")
	churnTime := flag.Duration("churn-time", time.Minute, "how long the churn phase lasts")
	inference := flag.Bool("inference", true, "every peer serves its 2 layers of neuroshard-small and an observer generates through the swarm once a second during the churn")
	out := flag.String("out", "sim-results", "directory for results.json and the plots")
	replot := flag.Bool("replot", false, "draw the plots again from the directory's results.json, without running")
	replicas := flag.String("replicas", "2,4,8,16", "replica counts whose DiLoCo rounds are timed (empty: none)")
	rounds := flag.Int("rounds", 5, "rounds timed per replica count")
	bandwidth := flag.Float64("bandwidth", 12.5e6, "bytes per second of every link in the rounds (12.5e6: 100 Mbit/s; 0: unlimited)")
	reprovide := flag.Duration("reprovide", 0, "how often a holder announces its layers again (0: the node's interval, 10m)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof reads it)")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "--cpuprofile:", err)
			os.Exit(2)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if *replot {
		var results []sim.Result
		data, err := os.ReadFile(filepath.Join(*out, "results.json"))
		if err == nil {
			err = json.Unmarshal(data, &results)
		}
		if err == nil && len(results) == 0 {
			err = fmt.Errorf("no results in %s", *out)
		}
		if err == nil {
			err = write(*out, results)
		}
		if err == nil {
			err = replotRounds(*out)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var counts []int
	for _, f := range strings.Split(*replicas, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "--replicas: %q is not a count of at least 2\n", f)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	var sizes []int
	for _, f := range strings.Split(*peers, ",") {
		if strings.TrimSpace(f) == "" {
			continue // --peers "": the rounds alone
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 4 {
			fmt.Fprintf(os.Stderr, "--peers: %q is not a size of at least 4\n", f)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var results []sim.Result
	for _, n := range sizes {
		fmt.Printf("%d peers:\n", n)
		start := time.Now()
		r, err := sim.Run(context.Background(), sim.Config{Peers: n, Latency: *latency, Lookups: *lookups, Messages: *messages,
			Churn: *churn, ChurnTime: *churnTime, Inference: *inference, Reprovide: *reprovide, Seed: uint64(n), Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }})
		if err != nil {
			fmt.Fprintf(os.Stderr, "%d peers: %v\n", n, err)
			os.Exit(1)
		}
		fmt.Printf("  (%.0f s)\n", time.Since(start).Seconds())
		results = append(results, r)
		// After each size, so a long run stopped midway keeps what it measured.
		if err := write(*out, results); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if len(counts) > 0 {
		fmt.Printf("DiLoCo rounds, %s layers %s, links %v and %.0f Mbit/s:\n", sim.RoundsModel, sim.RoundsSpan, *latency, *bandwidth*8/1e6)
		rs, err := sim.Rounds(context.Background(), sim.RoundsConfig{Replicas: counts, Rounds: *rounds, Latency: *latency, Bandwidth: *bandwidth,
			Log: func(f string, a ...any) { fmt.Printf(f+"\n", a...) }})
		if err == nil {
			err = writeRounds(*out, rs)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Printf("results and plots in %s\n", *out)
}

// writeRounds stores the rounds' figures and plots round time against the replicas.
func writeRounds(dir string, rs []sim.RoundResult) error {
	if err := writeJSON(filepath.Join(dir, "rounds.json"), rs); err != nil {
		return err
	}
	var xs, p50, worst []float64
	for _, r := range rs {
		xs, p50, worst = append(xs, float64(r.Replicas)), append(p50, r.P50MS), append(worst, r.MaxMS)
	}
	p := sim.Plot{Title: "DiLoCo round time against replicas of a span", XLabel: "replicas", YLabel: "ms", LogX: true,
		Series: []sim.Series{{Name: "p50", X: xs, Y: p50}, {Name: "slowest", X: xs, Y: worst}}}
	return writePNG(filepath.Join(dir, "rounds.png"), p)
}

// writeJSON stores v, indented, at path.
func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// writePNG draws the plot at path.
func writePNG(path string, p sim.Plot) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = p.WritePNG(f, 640, 360)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// replotRounds draws rounds.png again from rounds.json, when the directory has one.
func replotRounds(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "rounds.json"))
	if os.IsNotExist(err) {
		return nil
	}
	var rs []sim.RoundResult
	if err == nil {
		err = json.Unmarshal(data, &rs)
	}
	if err != nil {
		return err
	}
	return writeRounds(dir, rs)
}

func write(dir string, results []sim.Result) error {
	if err := writeJSON(filepath.Join(dir, "results.json"), results); err != nil {
		return err
	}
	col := func(f func(sim.Result) float64) (xs, ys []float64) {
		for _, r := range results {
			xs, ys = append(xs, float64(r.Peers)), append(ys, f(r))
		}
		return
	}
	series := func(name string, f func(sim.Result) float64) sim.Series {
		xs, ys := col(f)
		return sim.Series{Name: name, X: xs, Y: ys}
	}
	last := results[len(results)-1]
	var secs, dead, complete []float64
	for _, s := range last.ChurnSamples {
		secs, dead = append(secs, s.Second), append(dead, float64(s.Dead))
		c := 0.0
		if s.Complete {
			c = 1
		}
		complete = append(complete, c)
	}
	plots := map[string]sim.Plot{
		"lookup.png": {Title: "DHT lookup of a random peer's closest peers", XLabel: "peers", YLabel: "ms", LogX: true,
			Series: []sim.Series{series("p50", func(r sim.Result) float64 { return r.LookupP50MS }), series("p99", func(r sim.Result) float64 { return r.LookupP99MS })}},
		"lookup-peers.png": {Title: "Peers asked per lookup", XLabel: "peers", YLabel: "peers asked", LogX: true,
			Series: []sim.Series{series("mean", func(r sim.Result) float64 { return r.LookupAsked })}},
		"gossip.png": {Title: "Gossip: time to reach each peer", XLabel: "peers", YLabel: "ms", LogX: true,
			Series: []sim.Series{series("p50", func(r sim.Result) float64 { return r.GossipP50MS }), series("p99", func(r sim.Result) float64 { return r.GossipP99MS })}},
		"inference.png": {Title: "Generations through the swarm under churn (8 tokens)", XLabel: "peers", YLabel: "ms", LogX: true,
			Series: []sim.Series{series("p50", func(r sim.Result) float64 { return r.InferenceP50MS })}},
		"churn.png": {Title: fmt.Sprintf("Coverage view under churn, %d peers", last.Peers), XLabel: "seconds", YLabel: "count",
			Series: []sim.Series{{Name: "departed in view", X: secs, Y: dead}, {Name: "complete (1/0)", X: secs, Y: complete}}},
	}
	for name, p := range plots {
		if err := writePNG(filepath.Join(dir, name), p); err != nil {
			return err
		}
	}
	return nil
}
