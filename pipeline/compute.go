package pipeline

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/internal/peerrate"
	"github.com/neuroshard/neuroshard/p2p"
	"golang.org/x/time/rate"
)

// Compute budgets. The sessions a peer opens on this node spend its compute time: each peer
// may use ComputeShare of the node's cores on average, with a burst of ComputeBurst of
// compute, and a step bigger than MaxStepPositions positions (batch x new positions) is
// refused outright. A peer over its budget gets BUSY with the time until it has budget again;
// the node's own generations, and other peers, are not held up by it (one batch-64 prefill
// of 256 positions had taken both cores for 30 s).
const (
	// DefaultComputeShare is the part of the node's cores one peer may use on average.
	DefaultComputeShare = 0.5
	// DefaultComputeBurst is how much compute time a peer may use at once before its
	// average applies.
	DefaultComputeBurst = 30 * time.Second
	// MaxStepPositions bounds one step's positions (batch x new positions).
	MaxStepPositions = 4096
)

// computeBudgets keeps a token bucket per peer, in microseconds of compute (x/time/rate).
type computeBudgets struct {
	share float64 // of the node's cores
	burst time.Duration
	once  sync.Once
	by    *peerrate.Limiters[peer.ID]
}

func (b *computeBudgets) limiter(p peer.ID) *rate.Limiter {
	b.once.Do(func() {
		perSec := b.share * float64(runtime.GOMAXPROCS(0)) * 1e6 // µs of compute a second
		b.by = peerrate.New[peer.ID](rate.Limit(perSec), max(1, int(b.burst.Microseconds())))
	})
	return b.by.Get(p)
}

// admit refuses a step of a peer whose budget is spent, or one too large to take at all.
func (b *computeBudgets) admit(p peer.ID, positions int) error {
	if positions > MaxStepPositions {
		return &p2p.RemoteError{Code: "BAD_INPUT", Message: fmt.Sprintf("a step of %d positions (batch x new positions); at most %d", positions, MaxStepPositions)}
	}
	lim := b.limiter(p)
	if tok := lim.Tokens(); tok < 0 {
		wait := time.Duration(-tok / float64(lim.Limit()) * float64(time.Second))
		return &p2p.RemoteError{Code: "BUSY", Message: fmt.Sprintf("this peer's compute budget is spent; retry in %.1f s", wait.Seconds()), RetryAfter: wait.Seconds()}
	}
	return nil
}

// charge spends a step's compute time from a peer's budget (it may go below zero: the step
// ran; the next waits).
func (b *computeBudgets) charge(p peer.ID, spent time.Duration) {
	lim := b.limiter(p)
	now := time.Now()
	for us := int(spent.Microseconds()); us > 0; {
		n := min(us, lim.Burst()) // ReserveN takes at most the burst at a time
		lim.ReserveN(now, n)
		us -= n
	}
}
