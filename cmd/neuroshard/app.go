package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/neuroshard/neuroshard/httpapi"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/node"
	"github.com/neuroshard/neuroshard/settings"
	"github.com/urfave/cli/v2"
)

func env(name string) []string { return []string{"NEUROSHARD_" + name} }

func newApp() *cli.App {
	d := node.DefaultConfig()
	return &cli.App{
		Name:    "neuroshard",
		Usage:   "a peer of the NeuroShard network: serves and trains a shared language model",
		Version: node.Version,
		Description: `Running neuroshard with no subcommand starts a node. With no flags it is a standalone node:
it keeps its identity and API token in ~/.neuroshard (printing the token the first time), holds
every layer that fits its memory budget, and serves the REST API on http://127.0.0.1:8000.

Join a network by naming any of its nodes' multiaddrs (GET /api/v1/status lists them):

   neuroshard --port 8001 --bootstrap /ip4/127.0.0.1/tcp/9000/p2p/12D3KooW...

Every flag can also be set with an environment variable, e.g. NEUROSHARD_PORT=8001.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "token", Usage: "API and wallet token (default: the one stored in the data dir, or a new one)", EnvVars: env("TOKEN")},
			&cli.IntFlag{Name: "port", Value: d.Port, Usage: "REST API port; the p2p port is this + 1000 (0: any free ports)", EnvVars: env("PORT")},
			&cli.StringFlag{Name: "host", Value: d.Host, Usage: "IP the p2p host listens on (127.0.0.1 for a local network)", EnvVars: env("HOST")},
			&cli.StringFlag{Name: "api-host", Value: d.APIHost, Usage: "IP the REST API listens on", EnvVars: env("API_HOST")},
			&cli.StringSliceFlag{Name: "bootstrap", Usage: "multiaddr `ADDR` of a node to join through, ending in /p2p/<id> (repeatable)", EnvVars: env("BOOTSTRAP")},
			&cli.StringFlag{Name: "data-dir", Value: d.DataDir, Usage: "where identity, token and settings are kept", EnvVars: env("DATA_DIR")},
			&cli.StringFlag{Name: "layers", Usage: "hold this layer span, `A-B` inclusive (default: the least-replicated span that fits --max-memory)", EnvVars: env("LAYERS")},
			&cli.DurationFlag{Name: "rebalance", Value: d.Rebalance, Usage: "how often the node asks the balance rule whether to move to under-served layers (it moves when two looks in a row say so, fetching the layers' weights first); 0 never (the default with --layers)", EnvVars: env("REBALANCE")},
			&cli.StringFlag{Name: "max-memory", Usage: "memory budget for the layers, e.g. 512MB or 4GiB (default: stored setting, else 4GiB)", EnvVars: env("MAX_MEMORY")},
			&cli.StringFlag{Name: "backend", Value: layers.BackendCPU, Usage: "compute backend: cpu (this project's engine: deterministic, AVX2/AVX-512 GEMM; \"cpu:threads=N\" caps its threads) or simplego (gomlx's pure-Go reference, several times slower); every replica of a span must use the same, as their weights must agree bit for bit", EnvVars: env("BACKEND")},
			&cli.StringFlag{Name: "model", Value: d.Model, Usage: "model preset: " + strings.Join(layers.PresetNames(), ", "), EnvVars: env("MODEL")},
			&cli.Uint64Flag{Name: "model-seed", Usage: "seed of the initial weights (every node of a network must use the same)", EnvVars: env("MODEL_SEED")},
			&cli.BoolFlag{Name: "train", Value: true, Usage: "train the model with the network (--train=false to only serve); PATCH /config changes it while running", EnvVars: env("TRAIN")},
			&cli.IntFlag{Name: "diloco-steps", Usage: "inner steps H between DiLoCo rounds (default: the stored setting, 500)", EnvVars: env("DILOCO_STEPS")},
			&cli.StringFlag{Name: "diloco-compression", Usage: "pseudo-gradient compression: none, fp16 or int8 (default: the stored setting, fp16)", EnvVars: env("DILOCO_COMPRESSION")},
			&cli.Float64Flag{Name: "diloco-outer-lr", Usage: "learning rate of DiLoCo's outer Nesterov step; every replica of a span must use the same (default: the stored setting, 0.7 as in the paper; with short rounds, e.g. --diloco-steps 10, 1.0 with --diloco-outer-momentum 0 does better, see README)", EnvVars: env("DILOCO_OUTER_LR")},
			&cli.Float64Flag{Name: "diloco-outer-momentum", Usage: "momentum of DiLoCo's outer Nesterov step, in [0, 1); every replica of a span must use the same (default: the stored setting, 0.9)", EnvVars: env("DILOCO_OUTER_MOMENTUM")},
			&cli.StringFlag{Name: "data", Usage: "training corpus, a text `FILE` (default: the Shakespeare slice shipped in the binary)", EnvVars: env("DATA")},
			&cli.BoolFlag{Name: "relay", Usage: "relay connections for peers that cannot be dialled (circuit relay v2, when this node is reachable; at most 64 reservations and 8 circuits a peer)", EnvVars: env("RELAY")},
			&cli.StringSliceFlag{Name: "relay-via", Usage: "multiaddr `ADDR` of a relay to reserve a slot on when this node cannot be dialled (repeatable; the bootstrap peers are tried after)", EnvVars: env("RELAY_VIA")},
			&cli.StringFlag{Name: "reachability", Value: "auto", Usage: "whether peers can dial this node: auto (AutoNAT decides), public, or private (behind a NAT: advertise relay addresses)", EnvVars: env("REACHABILITY")},
			&cli.StringFlag{Name: "dht-mode", Value: d.DHTMode, Usage: "DHT mode: server, client, or auto (server on a local network, reachability-driven on the internet)", EnvVars: env("DHT_MODE")},
			&cli.StringFlag{Name: "net-profile", Value: d.Profile, Usage: "address filters: local (loopback and private addresses), internet (public only), or auto", EnvVars: env("NET_PROFILE")},
			&cli.StringFlag{Name: "network-config", Usage: "ledger rules of the network, a JSON `FILE` (genesis allocation, fees, reward rates; see README); every node of a network must use the same (default: the built-in network)", EnvVars: env("NETWORK_CONFIG")},
			&cli.StringSliceFlag{Name: "rate-limit", Usage: "REST API budget per minute, `CLASS=N` for status, inference or wallet (0: unlimited; default seed 003's 100, 60, 10; repeatable)", EnvVars: env("RATE_LIMIT")},
			&cli.DurationFlag{Name: "train-yield", Value: 2 * time.Second, Usage: "while the node serves inference, training waits up to this long before each micro-step and within each of its computations (serving comes first); 0 never waits", EnvVars: env("TRAIN_YIELD")},
			&cli.StringFlag{Name: "audit", Value: "sampled", Usage: "how remote stages are checked: sampled (a share of generations, --audit-rate, after the answer), full (every step against a second holder before a token is returned; twice the compute, needs a second holder of each span) or off", EnvVars: env("AUDIT")},
			&cli.Float64Flag{Name: "audit-rate", Value: 0.25, Usage: "chance that each remote stage of a generation is audited: its answers recomputed by this node or another holder of the same weights, a stage caught lying excluded from routes (0 turns audits off)", EnvVars: env("AUDIT_RATE")},
			&cli.BoolFlag{Name: "bench", Value: true, Usage: "measure this machine's throughput at the first start on a preset and backend (a few seconds; kept in the data dir, shown in the status)", EnvVars: env("BENCH")},
			&cli.BoolFlag{Name: "rebench", Usage: "measure the throughput again at this start", EnvVars: env("REBENCH")},
			&cli.DurationFlag{Name: "reprovide-interval", Value: d.ReprovideInterval, Usage: "how often the node announces its layers in the DHT again", EnvVars: env("REPROVIDE_INTERVAL")},
		}, logFlags()...),
		Before: setupLogging,
		Action: runNode,
		Commands: []*cli.Command{
			statusCommand(),
			benchCommand(),
			dhtCommand(),
			walletCommand(),
		},
	}
}

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: env("LOG_LEVEL")},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: env("LOG_FORMAT")},
	}
}

func setupLogging(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, opts)))
	case "json":
		slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, opts)))
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.String("log-format"))
	}
	return nil
}

func configFromFlags(c *cli.Context) (node.Config, error) {
	if c.Args().Present() {
		return node.Config{}, fmt.Errorf("unknown command %q (see neuroshard --help)", c.Args().First())
	}
	cfg := node.DefaultConfig()
	cfg.Token = c.String("token")
	cfg.Port = c.Int("port")
	cfg.Host = c.String("host")
	cfg.APIHost = c.String("api-host")
	cfg.Bootstrap = c.StringSlice("bootstrap")
	cfg.Relay, cfg.Relays, cfg.Reachability = c.Bool("relay"), c.StringSlice("relay-via"), c.String("reachability")
	cfg.DataDir = c.String("data-dir")
	cfg.Layers = c.String("layers")
	if cfg.Rebalance = c.Duration("rebalance"); cfg.Layers != "" && !c.IsSet("rebalance") {
		cfg.Rebalance = 0 // a span fixed by the operator stays
	}
	cfg.Model = c.String("model")
	cfg.ModelSeed = c.Uint64("model-seed")
	cfg.DataFile = c.String("data")
	if c.IsSet("train") {
		train := c.Bool("train")
		cfg.Train = &train
	}
	cfg.DiLoCoSteps = c.Int("diloco-steps")
	cfg.Compression = c.String("diloco-compression")
	if c.IsSet("diloco-outer-lr") {
		v := c.Float64("diloco-outer-lr")
		cfg.OuterLR = &v
	}
	if c.IsSet("diloco-outer-momentum") {
		v := c.Float64("diloco-outer-momentum")
		cfg.OuterMomentum = &v
	}
	if err := layers.SetBackend(c.String("backend")); err != nil {
		return cfg, fmt.Errorf("--backend: %w", err)
	}
	if y := c.Duration("train-yield"); y < 0 {
		return cfg, fmt.Errorf("--train-yield %s: want 0 or more", y)
	} else if y == 0 {
		cfg.TrainYield = -1 // never
	} else {
		cfg.TrainYield = y
	}
	if r := c.Float64("audit-rate"); r < 0 || r > 1 {
		return cfg, fmt.Errorf("--audit-rate %g: want a chance between 0 and 1", r)
	} else if r == 0 {
		cfg.AuditRate = -1 // off
	} else {
		cfg.AuditRate = r
	}
	switch a := c.String("audit"); a {
	case "sampled":
	case "full":
		cfg.AuditFull = true
	case "off":
		cfg.AuditRate = -1
	default:
		return cfg, fmt.Errorf("--audit %q: want sampled, full or off", a)
	}
	switch {
	case c.Bool("rebench"):
		cfg.Bench = node.BenchAgain
	case c.Bool("bench"):
		cfg.Bench = node.BenchFirst
	default:
		cfg.Bench = node.BenchOff
	}
	cfg.DHTMode = c.String("dht-mode")
	cfg.Profile = c.String("net-profile")
	cfg.ReprovideInterval = c.Duration("reprovide-interval")
	if f := c.String("network-config"); f != "" {
		p, err := ledger.LoadParams(f)
		if err != nil {
			return cfg, fmt.Errorf("--network-config: %w", err)
		}
		cfg.Network = &p
	}
	if _, err := apiOptions(c); err != nil {
		return cfg, err
	}
	if s := c.String("max-memory"); s != "" {
		m, err := settings.ParseMemory(s)
		if err != nil {
			return cfg, err
		}
		cfg.MaxMemory = m
	}
	return cfg, cfg.Validate()
}

// apiOptions are the REST API's settings from the flags (--rate-limit).
func apiOptions(c *cli.Context) ([]httpapi.Option, error) {
	specs := c.StringSlice("rate-limit")
	if len(specs) == 0 {
		return nil, nil
	}
	limits, err := parseRateLimits(specs)
	if err != nil {
		return nil, err
	}
	return []httpapi.Option{httpapi.WithRateLimits(limits)}, nil
}

// parseRateLimits reads CLASS=N pairs over seed 003's defaults; 0 lifts a class's limit.
func parseRateLimits(specs []string) (map[httpapi.Class]int, error) {
	limits := map[httpapi.Class]int{}
	for c, n := range httpapi.DefaultLimits {
		limits[c] = n
	}
	for _, spec := range specs {
		name, val, ok := strings.Cut(spec, "=")
		n, err := strconv.Atoi(val)
		if _, known := httpapi.DefaultLimits[httpapi.Class(name)]; !ok || err != nil || n < 0 || !known {
			return nil, fmt.Errorf("--rate-limit %q: want CLASS=N with CLASS status, inference or wallet and N >= 0", spec)
		}
		if n == 0 {
			delete(limits, httpapi.Class(name))
		} else {
			limits[httpapi.Class(name)] = n
		}
	}
	return limits, nil
}

// runNode is the default action: run a node until Ctrl-C or SIGTERM.
func runNode(c *cli.Context) error {
	cfg, err := configFromFlags(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := apiOptions(c)
	if err != nil {
		return err
	}
	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	api, err := httpapi.New(n.API(), n.Token(), opts...)
	if err != nil {
		n.Close()
		return err
	}
	n.Attach(api)
	out := c.App.Writer
	if n.TokenGenerated() {
		fmt.Fprintf(out, "Generated a new API and wallet token, stored in %s (shown only this once):\n\n    %s\n\n",
			filepath.Join(cfg.DataDir, "token"), n.Token())
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return err
	}
	fmt.Fprintf(out, "NeuroShard node %s running\n  model:  %s, layers %s\n  API:    %s/api/v1\n", n.ID(), n.Model().Name, n.Span(), n.APIURL())
	for _, a := range n.Multiaddrs() {
		fmt.Fprintf(out, "  p2p:    %s\n", a)
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop.")
	<-ctx.Done()
	stop() // a second Ctrl-C kills at once
	fmt.Fprintln(out, "Shutting down...")
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		return fmt.Errorf("shutdown took longer than 15s; exiting anyway")
	}
}

// background is the context for client commands.
func background(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, c.Duration("timeout"))
}
