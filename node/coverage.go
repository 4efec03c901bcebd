package node

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// coverageLookupTimeout bounds one refresh of the coverage view.
const coverageLookupTimeout = 3 * time.Second

// Roles, after seed 001: a driver holds the embedding (layer 0) and takes requests in, a
// validator holds the LM head (the last layer) and computes the loss, a worker holds the middle.
// A node holding both ends is a driver: it can serve a request on its own.
const (
	RoleDriver    = "driver"
	RoleWorker    = "worker"
	RoleValidator = "validator"
)

func roleOf(layersHeld []int, total int) string {
	role := RoleWorker
	for _, l := range layersHeld {
		if l == 0 {
			return RoleDriver
		}
		if l == total-1 {
			role = RoleValidator
		}
	}
	return role
}

// coverageCache reuses one coverage view for a while: /peers, /network and /coverage all read
// it, and each refresh costs one DHT lookup per layer.
type coverageCache struct {
	mu   sync.Mutex
	at   time.Time
	view apitypes.Coverage
	set  bool
}

// Coverage returns who holds each layer, refreshed at most every CoverageInterval.
func (n *Node) Coverage(ctx context.Context) apitypes.Coverage {
	c := &n.coverage
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set && time.Since(c.at) < n.cfg.CoverageInterval {
		return c.view
	}
	lctx, cancel := context.WithTimeout(ctx, coverageLookupTimeout)
	defer cancel()
	c.view, c.at, c.set = n.lookupCoverage(lctx), time.Now(), true
	return c.view
}

// lookupCoverage asks the DHT for the providers of every layer, in parallel.
func (n *Node) lookupCoverage(ctx context.Context) apitypes.Coverage {
	cov := apitypes.Coverage{Model: n.model.Name, Layers: make([]apitypes.LayerCoverage, n.model.Layers), Missing: []int{}}
	var wg sync.WaitGroup
	for i := range cov.Layers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			provs, err := n.host.FindProviders(ctx, LayerKey(n.model.Name, i), 0)
			if err != nil {
				logger().Debug("coverage lookup", "layer", i, "err", err)
			}
			ids := make([]string, 0, len(provs))
			for _, p := range provs {
				ids = append(ids, p.ID.String())
			}
			sort.Strings(ids)
			cov.Layers[i] = apitypes.LayerCoverage{Index: i, Providers: ids, Replicas: len(ids)}
		}(i)
	}
	wg.Wait()
	// Replicas counts the other holders: the node's own layers are not yet announced while it
	// chooses them, and once they are, a joining peer's view is what matters.
	self := n.host.ID().String()
	for i := range cov.Layers {
		for _, id := range cov.Layers[i].Providers {
			if id == self {
				cov.Layers[i].Replicas--
			}
		}
		if len(cov.Layers[i].Providers) == 0 {
			cov.Missing = append(cov.Missing, i)
		}
	}
	cov.Complete = len(cov.Missing) == 0
	return cov
}

// layersByPeer inverts a coverage view: for each peer, the layers it holds.
func layersByPeer(cov apitypes.Coverage) map[string][]int {
	out := map[string][]int{}
	for _, lc := range cov.Layers {
		for _, id := range lc.Providers {
			out[id] = append(out[id], lc.Index)
		}
	}
	return out
}

// providersOf answers GET /dht/providers/:layer with a fresh lookup.
func (n *Node) providersOf(ctx context.Context, layer int) ([]peer.AddrInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, coverageLookupTimeout)
	defer cancel()
	return n.host.FindProviders(ctx, LayerKey(n.model.Name, layer), 0)
}
