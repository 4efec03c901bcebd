package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	mh "github.com/multiformats/go-multihash"
)

// provideTimeout bounds one announcement of one key.
const provideTimeout = 30 * time.Second

// ContentKey turns an opaque key such as "<model>/<layer>" into the CID the DHT stores provider
// records under: CIDv1, raw codec, sha2-256 of the key's bytes.
func ContentKey(key string) cid.Cid {
	sum, err := mh.Sum([]byte(key), mh.SHA2_256, -1)
	if err != nil { // sha2-256 is always registered
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, sum)
}

// SetAnnounced replaces the set of keys this node provides and announces them at once (in the
// background); they are announced again every ReprovideInterval.
func (n *Host) SetAnnounced(keys []string) {
	n.mu.Lock()
	n.announced = slices.Clone(keys)
	n.mu.Unlock()
	n.kickAnnounce()
}

// Announced lists the keys this node provides.
func (n *Host) Announced() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.announced)
}

func (n *Host) kickAnnounce() {
	select {
	case n.reannounce <- struct{}{}:
	default:
	}
}

// Provide announces the keys now and returns the first error; used by the loop and by tests.
func (n *Host) Provide(ctx context.Context, keys ...string) error {
	var errs []error
	for _, k := range keys {
		pctx, cancel := context.WithTimeout(ctx, provideTimeout)
		err := n.dht.Provide(pctx, ContentKey(k), true)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("provide %q: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

func (n *Host) provideLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReprovideInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.reannounce:
		}
		// With an empty routing table the record stays local, as provider records do.
		if err := n.putRecord(n.ctx); err != nil && n.ctx.Err() == nil {
			logger().Debug("record not put", "err", err)
		}
		keys := n.Announced()
		if len(keys) == 0 {
			continue
		}
		// With an empty routing table the provider record stays local; the bootstrap loop
		// kicks this loop again once the node has peers.
		if err := n.Provide(n.ctx, keys...); err != nil && n.ctx.Err() == nil {
			logger().Debug("announce incomplete", "keys", len(keys), "err", err)
		} else if err == nil {
			logger().Debug("announced", "keys", len(keys))
		}
	}
}

// FindProviders lists up to max providers of a key (0: no limit beyond the DHT's own), this
// node included when it provides the key.
func (n *Host) FindProviders(ctx context.Context, key string, max int) ([]peer.AddrInfo, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	var out []peer.AddrInfo
	seen := map[peer.ID]bool{}
	if slices.Contains(n.Announced(), key) {
		out = append(out, peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()})
		seen[n.h.ID()] = true
	}
	for ai := range n.dht.FindProvidersAsync(ctx, ContentKey(key), max) {
		if seen[ai.ID] {
			continue
		}
		seen[ai.ID] = true
		out = append(out, ai)
	}
	if err := ctx.Err(); err != nil && len(out) == 0 && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	return out, nil
}

// Reachable tells whether a peer answers now: a connection to it opens within ctx (its
// addresses from ai, else those the peerstore knows), or, connected already, it answers a
// ping within ctx. A connection alone is no proof: one to a machine that went away without
// closing it lives until the transport's idle timeout (30 s and more). The connection is left
// as it is either way (sessions may be using it; the transport closes a dead one).
func (n *Host) Reachable(ctx context.Context, ai peer.AddrInfo) bool {
	if ai.ID == n.h.ID() {
		return true
	}
	if n.h.Network().Connectedness(ai.ID) != network.Connected {
		return n.h.Connect(ctx, ai) == nil
	}
	pctx, cancel := context.WithCancel(ctx) // Ping goes on pinging until its ctx ends
	defer cancel()
	// Ping closes its channel without a result when ctx ends first (a peer that never
	// answers): a zero Result read from the closed channel is no answer.
	res, ok := <-ping.Ping(pctx, n.h, ai.ID)
	return ok && res.Error == nil
}

func (n *Host) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// ClosestPeers looks up the peers whose IDs are closest to key in the DHT's keyspace (a
// Kademlia lookup: the swarm simulation times them).
func (n *Host) ClosestPeers(ctx context.Context, key string) ([]peer.ID, error) {
	if n.isClosed() {
		return nil, ErrClosed
	}
	return n.dht.GetClosestPeers(ctx, key)
}
