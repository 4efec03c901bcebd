package pipeline

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/p2p"
)

// DefaultStepFloor is the least time a remote stage of known speed gets for one step: room
// for a garbage-collection pause, a congested link, or a batch it waits to join.
const DefaultStepFloor = 5 * time.Second

// stepSlack is how many times its measured speed a stage may take for a step beyond the
// floor before it counts as stalled.
const stepSlack = 20

// stepSpeeds is the measured time per position of the remote stages this node has used. A
// stage that stalls (or never answers) costs a request the floor plus twenty times its usual
// time, and then fails over, instead of the 60 s a step may take on a stage never measured.
type stepSpeeds struct {
	floor time.Duration
	mu    sync.Mutex
	per   map[peer.ID]time.Duration // moving average of a step's time per position
}

// timeout is how long a step of positions on p may take.
func (s *stepSpeeds) timeout(p peer.ID, positions int) time.Duration {
	s.mu.Lock()
	per, known := s.per[p]
	s.mu.Unlock()
	if !known {
		return p2p.ForwardStepTimeout
	}
	return min(p2p.ForwardStepTimeout, s.floor+stepSlack*per*time.Duration(max(1, positions)))
}

// note records a step of positions on p that took d.
func (s *stepSpeeds) note(p peer.ID, d time.Duration, positions int) {
	per := d / time.Duration(max(1, positions))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.per == nil {
		s.per = map[peer.ID]time.Duration{}
	}
	if old, known := s.per[p]; known {
		per = (3*old + per) / 4
	}
	s.per[p] = per
}
