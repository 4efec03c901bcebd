package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/node"
	"github.com/urfave/cli/v2"
)

// clientFlags are shared by the subcommands that talk to a running node.
func clientFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "api", Value: client.DefaultAPI, Usage: "base URL of the node's REST API", EnvVars: env("API")},
		&cli.StringFlag{Name: "token", Usage: "API token (default: the token in --data-dir)", EnvVars: env("TOKEN")},
		&cli.StringFlag{Name: "data-dir", Value: node.DefaultDataDir(), Usage: "data dir to read the token from when --token is not given", EnvVars: env("DATA_DIR")},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after this long"},
	}, logFlags()...)
}

func apiClient(c *cli.Context) (*client.Client, error) {
	token, err := tokenOf(c)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read token: %w", err)
	}
	return client.New(c.String("api"), token), nil
}

// tokenOf is --token, or the token stored in --data-dir.
func tokenOf(c *cli.Context) (string, error) {
	if t := c.String("token"); t != "" {
		return t, nil
	}
	raw, err := os.ReadFile(filepath.Join(c.String("data-dir"), "token"))
	return strings.TrimSpace(string(raw)), err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func statusCommand() *cli.Command {
	return clientAction("status", "print a running node's status", nil, func(c *cli.Context, api *client.Client) (any, func(), error) {
		st, err := api.Status(c.Context)
		return st, func() {
			w := table(c.App.Writer)
			fmt.Fprintf(w, "Node\t%s\n", st.NodeID)
			fmt.Fprintf(w, "Status\t%s (up %s)\n", st.Status, time.Duration(st.UptimeSeconds)*time.Second)
			fmt.Fprintf(w, "Version\t%s\n", st.Version)
			fmt.Fprintf(w, "Model\t%s\n", st.Model)
			fmt.Fprintf(w, "Role\t%s\n", st.Role)
			fmt.Fprintf(w, "Layers\t%s\n", spanText(st.Layers))
			fmt.Fprintf(w, "Peers\t%d\n", st.PeerCount)
			fmt.Fprintf(w, "CPU\t%.1f%%\n", st.Resources.CPUPercent)
			fmt.Fprintf(w, "RAM\t%.1f MB\n", float64(st.Resources.RAMUsed)/1e6)
			for i, a := range st.Multiaddrs {
				label := ""
				if i == 0 {
					label = "Multiaddrs"
				}
				fmt.Fprintf(w, "%s\t%s\n", label, a)
			}
			w.Flush()
		}, err
	})
}

// clientAction builds a subcommand that calls the running node and prints its answer as a
// table, or as JSON with --json.
func clientAction(name, usage string, flags []cli.Flag, run func(c *cli.Context, api *client.Client) (any, func(), error)) *cli.Command {
	return &cli.Command{
		Name:   name,
		Usage:  usage,
		Flags:  append(flags, clientFlags()...),
		Before: setupLogging,
		Action: func(c *cli.Context) error {
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			ctx, cancel := background(c)
			defer cancel()
			c.Context = ctx
			v, show, err := run(c, api)
			if err != nil {
				var ae *client.APIError
				if errors.As(err, &ae) && len(ae.Details) > 0 {
					return fmt.Errorf("%w %v", err, ae.Details)
				}
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, v)
			}
			show()
			return nil
		},
	}
}

func spanText(ls []int) string {
	if len(ls) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d-%d", ls[0], ls[len(ls)-1])
}

// dhtSource answers DHT questions either through a running node's API or, with --bootstrap,
// through a short-lived DHT client of its own.
type dhtSource interface {
	RoutingTable(ctx context.Context) (apitypes.RoutingTable, error)
	Providers(ctx context.Context, layer int) (apitypes.Providers, error)
	FindPeer(ctx context.Context, id string) (apitypes.PeerAddrs, error)
	Coverage(ctx context.Context) (apitypes.Coverage, error)
}

// probeSource adapts a probe node to dhtSource.
type probeSource struct{ n *node.Node }

func (p probeSource) RoutingTable(ctx context.Context) (apitypes.RoutingTable, error) {
	return p.n.API().RoutingTable(ctx), nil
}
func (p probeSource) Providers(ctx context.Context, layer int) (apitypes.Providers, error) {
	return p.n.API().Providers(ctx, layer)
}
func (p probeSource) FindPeer(ctx context.Context, id string) (apitypes.PeerAddrs, error) {
	return p.n.API().FindPeer(ctx, id)
}
func (p probeSource) Coverage(ctx context.Context) (apitypes.Coverage, error) {
	return p.n.API().Coverage(ctx), nil
}

func withDHT(c *cli.Context, fn func(ctx context.Context, src dhtSource) error) error {
	ctx, cancel := background(c)
	defer cancel()
	if boot := c.StringSlice("bootstrap"); len(boot) > 0 {
		host := "0.0.0.0"
		if strings.HasPrefix(boot[0], "/ip4/127.") {
			host = "127.0.0.1"
		}
		p, err := node.NewProbe(ctx, boot, c.String("model"), host)
		if err != nil {
			return err
		}
		defer p.Close()
		return fn(ctx, probeSource{p})
	}
	api, err := apiClient(c)
	if err != nil {
		return err
	}
	return fn(ctx, api)
}

func dhtCommand() *cli.Command {
	flags := append(clientFlags(),
		&cli.StringSliceFlag{Name: "bootstrap", Usage: "ask the DHT directly, joining through `ADDR` as a short-lived client, instead of through --api"},
		&cli.StringFlag{Name: "model", Value: layers.DefaultModel, Usage: "model whose layers to look up (with --bootstrap)", EnvVars: env("MODEL")},
	)
	sub := func(name, usage, args string, action func(c *cli.Context, ctx context.Context, src dhtSource) error) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: args, Flags: flags, Before: setupLogging,
			Action: func(c *cli.Context) error {
				return withDHT(c, func(ctx context.Context, src dhtSource) error { return action(c, ctx, src) })
			},
		}
	}
	return &cli.Command{
		Name:  "dht",
		Usage: "inspect the DHT: routing table, layer providers, peers, coverage",
		Description: `By default these ask a running node (--api, --token). With --bootstrap they join the
network as a short-lived DHT client of their own and ask it directly.`,
		Subcommands: []*cli.Command{
			sub("routing-table", "list the peers in the node's DHT routing table", "", showRoutingTable),
			sub("providers", "list the peers that hold a layer", "LAYER", showProviders),
			sub("find-peer", "look up a peer's addresses", "PEER_ID", showPeer),
			sub("coverage", "for each layer, who holds it", "", showCoverage),
		},
	}
}

func showRoutingTable(c *cli.Context, ctx context.Context, src dhtSource) error {
	rt, err := src.RoutingTable(ctx)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, rt)
	}
	w := table(c.App.Writer)
	fmt.Fprintln(w, "PEER\tCONNECTED\tLATENCY")
	for _, p := range rt.Peers {
		fmt.Fprintf(w, "%s\t%v\t%.2f ms\n", p.ID, p.Connected, p.LatencyMS)
	}
	fmt.Fprintf(w, "%d peers\n", rt.Size)
	return w.Flush()
}

func showProviders(c *cli.Context, ctx context.Context, src dhtSource) error {
	if c.NArg() != 1 {
		return fmt.Errorf("usage: neuroshard dht providers LAYER")
	}
	layer, err := strconv.Atoi(c.Args().First())
	if err != nil {
		return fmt.Errorf("LAYER must be an integer, not %q", c.Args().First())
	}
	pr, err := src.Providers(ctx, layer)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, pr)
	}
	w := table(c.App.Writer)
	fmt.Fprintf(w, "Layer %d (key %s)\n", pr.Layer, pr.Key)
	fmt.Fprintln(w, "PEER\tADDRESSES")
	for _, p := range pr.Providers {
		id := p.ID
		if p.Self {
			id += " (this node)"
		}
		fmt.Fprintf(w, "%s\t%s\n", id, strings.Join(p.Addrs, " "))
	}
	fmt.Fprintf(w, "%d providers\n", len(pr.Providers))
	return w.Flush()
}

func showPeer(c *cli.Context, ctx context.Context, src dhtSource) error {
	if c.NArg() != 1 {
		return fmt.Errorf("usage: neuroshard dht find-peer PEER_ID")
	}
	pa, err := src.FindPeer(ctx, c.Args().First())
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, pa)
	}
	fmt.Fprintln(c.App.Writer, pa.ID)
	for _, a := range pa.Addrs {
		fmt.Fprintln(c.App.Writer, "  "+a)
	}
	return nil
}

func showCoverage(c *cli.Context, ctx context.Context, src dhtSource) error {
	cov, err := src.Coverage(ctx)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, cov)
	}
	w := table(c.App.Writer)
	fmt.Fprintf(w, "Model %s\n", cov.Model)
	fmt.Fprintln(w, "LAYER\tHOLDERS\tPEERS")
	for _, l := range cov.Layers {
		short := make([]string, 0, len(l.Providers))
		for _, id := range l.Providers {
			if len(id) > 12 {
				id = "…" + id[len(id)-8:]
			}
			short = append(short, id)
		}
		fmt.Fprintf(w, "%d\t%d\t%s\n", l.Index, len(l.Providers), strings.Join(short, " "))
	}
	if cov.Complete {
		fmt.Fprintln(w, "Every layer is held: the network can serve the whole model.")
	} else {
		fmt.Fprintf(w, "Layers nobody holds: %v\n", cov.Missing)
	}
	return w.Flush()
}
