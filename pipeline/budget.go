package pipeline

import (
	"errors"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/layers"
)

// The node's KV caches share one memory budget, counted in bytes: a session reserves what its
// cache can grow to (batch x positions x the bytes a position costs on its span) when it
// opens, and gives it back when it ends. Sessions grow their caches as they go, so the
// reservation is a bound, not an allocation. Peers get at most a share of the budget each, so
// a few identities cannot take it all; the node's own generations draw from the same budget.
// Full is a clear refusal with a time to retry, never a wait that stalls others.

// DefaultKVBudget is the budget when the config gives none.
const DefaultKVBudget = 1 << 30

// peerShare is the part of the budget one peer may hold (1/peerShare).
const peerShare = 4

// keptShare is the part of the budget (1/keptShare) that peers without a standing here
// (knownPeer) cannot take: fresh identities are served from the rest, so a crowd of them
// cannot lock out the network's own holders.
const keptShare = 4

// RetryAfter is the time a refused request is told to wait, in seconds: about how long a
// generation holds its reservation.
const RetryAfter = 5

// ErrBusy is returned when the KV-cache budget cannot take a new session.
var ErrBusy = errors.New("pipeline: KV-cache budget full")

// BusyError says how much of the budget is in use; errors.Is(err, ErrBusy) holds.
type BusyError struct {
	Want, Used, Limit int64
	PerPeer           bool // the peer's share was full, not the node's budget
	Unknown           bool // the part open to peers without a standing here was full
}

func (e *BusyError) Error() string {
	scope := "the node's KV-cache budget"
	switch {
	case e.PerPeer:
		scope = "this peer's share of the KV-cache budget"
	case e.Unknown:
		scope = "the part of the KV-cache budget open to peers that hold no layers and passed no audit here"
	}
	return fmt.Sprintf("%s is full: %d bytes in use of %d, the session needs %d; retry in %d s", scope, e.Used, e.Limit, e.Want, RetryAfter)
}

// Is makes errors.Is(err, ErrBusy) hold.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

type kvBudget struct {
	mu     sync.Mutex
	limit  int64
	used   int64
	byPeer map[peer.ID]int64 // "" is the node's own generations
}

// reserve takes n bytes for p (known: a peer with a standing here, or the node itself), or
// says why not.
func (b *kvBudget) reserve(p peer.ID, n int64, known bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.limit {
		return &BusyError{Want: n, Used: b.used, Limit: b.limit}
	}
	if open := b.limit - b.limit/keptShare; !known && b.used+n > open {
		return &BusyError{Want: n, Used: b.used, Limit: open, Unknown: true}
	}
	if share := b.limit / peerShare; p != "" && b.byPeer[p]+n > share {
		return &BusyError{Want: n, Used: b.byPeer[p], Limit: share, PerPeer: true}
	}
	if b.byPeer == nil {
		b.byPeer = map[peer.ID]int64{}
	}
	b.used += n
	b.byPeer[p] += n
	return nil
}

func (b *kvBudget) release(p peer.ID, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.byPeer[p] -= n; b.byPeer[p] <= 0 {
		delete(b.byPeer, p)
	}
}

// inUse is the bytes reserved now.
func (b *kvBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// sessionBytes bounds a session's KV cache: batch x positions x (keys and values of every
// layer of the span).
func sessionBytes(cfg layers.Config, span layers.Span, batch, positions int) int64 {
	return int64(batch) * int64(positions) * 2 * int64(cfg.Heads*cfg.HeadDim()) * 4 * int64(span.Len())
}
