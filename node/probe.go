package node

import (
	"context"
	"errors"
	"os"
)

// NewProbe starts a short-lived DHT client that joins through the bootstrap peers to answer
// one question (the `neuroshard dht` commands with --bootstrap). It has a throwaway identity,
// announces nothing and serves no API; Close removes its temporary data dir.
func NewProbe(ctx context.Context, bootstrap []string, model, host string) (*Node, error) {
	if len(bootstrap) == 0 {
		return nil, errors.Join(ErrInvalidConfig, errors.New("a probe needs --bootstrap"))
	}
	dir, err := os.MkdirTemp("", "neuroshard-probe-*")
	if err != nil {
		return nil, err
	}
	cfg := DefaultConfig()
	cfg.DataDir, cfg.Port, cfg.Host, cfg.Bootstrap, cfg.Model = dir, 0, host, bootstrap, model
	cfg.DHTMode = "client"
	n, err := New(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	n.probeDir = dir
	if err := n.host.Start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	if len(n.host.RoutingTable()) == 0 {
		n.Close()
		return nil, errors.New("node: could not join through any bootstrap peer")
	}
	n.state.Store("running")
	return n, nil
}
