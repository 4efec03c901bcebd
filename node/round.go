package node

import (
	"context"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/diloco/replicanet"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger/ledgersync"
)

// The node's part of the DiLoCo round: the round itself is diloco.Replica; the node gives it
// the network (the exchange protocol, the span's replicas from coverage and gossip, the
// libp2p key) and runs a round each time the stage has taken H inner steps.

// shortRound is the H at and below which the outer step's momentum was measured to hurt
// (README, Performance).
const shortRound = 50

// initSync makes the replica of the held span, from the loaded weights.
func (n *Node) initSync(st *layers.Stage, round int64) {
	n.rep.Store(diloco.NewReplica(diloco.ReplicaConfig{
		Self: n.host.ID().String(), Specs: n.model.ParamSpecs(st.Span()), Weights: roundWeights{n: n, st: st},
		Transport:  replicanet.Transport{Host: n.host, Span: n.heldSpan},
		Membership: replicanet.Members{Host: n.host, Holders: func(ctx context.Context) []peer.ID { return n.catch.RoundMembers(ctx) }, RoundOf: n.gossipedRound},
		Signer:     replicanet.Signer{Key: n.key},
		Settings:   n.roundSettings, Loss: n.recentLoss, RoundTimeout: n.cfg.RoundTimeout, Round: round,
		Finished: n.roundFinished,
		Tamper: func(p *layers.Params) {
			if n.tamper != nil {
				n.tamper(p)
			}
		},
	}))
}

// replica is the held span's DiLoCo replica (nil before Start).
func (n *Node) replica() *diloco.Replica { return n.rep.Load() }

// heldSpan is the model and span this node's replica trains.
func (n *Node) heldSpan() replicanet.Span {
	return replicanet.Span{Model: n.model.Name, Span: n.Span()}
}

// gossipedRound is the round a peer last gossiped, if it did within replicanet.ReportTTL.
func (n *Node) gossipedRound(p peer.ID) (int64, bool) {
	r, ok := n.reports.Latest(p.String())
	return r.Round, ok
}

// roundState is the replica's progress (zero before the node holds a span).
func (n *Node) roundState() diloco.State {
	if n.replica() == nil {
		return diloco.State{}
	}
	return n.replica().State()
}

// roundSettings are the round's knobs as the node's settings say now.
func (n *Node) roundSettings() diloco.Settings {
	t := n.settings.Get().Training
	s := diloco.Settings{Compression: t.Codec(), OuterLR: float32(t.OuterLR), OuterMomentum: float32(t.OuterMomentum), InnerLR: float32(t.LearningRate)}
	if !t.Enabled {
		// An idle replica holds nobody to its learning rate and aggregates no round (as the
		// first aggregator it refused every trainer, or held each: its span stalled).
		s.InnerLR, s.Idle = 0, true
	}
	return s
}

// roundFinished saves the agreed weights, tells the network, and vouches for the round's
// other members: each member that ended the round with these weights countersigns the others'
// part in it, and a member claims its round reward once the network's quorum has.
func (n *Node) roundFinished(r diloco.Round) {
	span := n.Span()
	meta := layers.CheckpointMeta{Model: n.model.Name, Span: span, Step: r.Steps, Round: r.Round + 1}
	n.writes.Record("checkpoint", layers.SaveCheckpoint(n.checkpointPath(span), meta, r.Theta0))
	work := ledgersync.RoundWork(n.model.Name, span.First, span.Last, r.Round, r.Hash)
	n.lsync.ExpectRound(span.First, work)
	var others []peer.ID
	for _, p := range r.Used {
		if id, err := peer.Decode(p); err == nil && id != n.host.ID() {
			others = append(others, id)
		}
	}
	n.lsync.SendRoundReceipts(others, span.First, work)
	n.publishTraining()
	n.api.RoundDone(r, float64(n.recentLoss()))
}

// replicas lists the peers holding exactly the node's span (itself included), sorted by ID.
func (n *Node) replicas(ctx context.Context) []peer.ID {
	span := n.Span()
	var out []peer.ID
	for p, spans := range n.pipe.Holdings(ctx) {
		if slices.Contains(spans, span) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// wake tells the round loop that something it waits on changed (an inner step, a report).
func (n *Node) wake() {
	select {
	case n.roundWake <- struct{}{}:
	default:
	}
}

// innerSteps is how many inner steps the stage has taken.
func (n *Node) innerSteps() int64 {
	n.train.mu.Lock()
	defer n.train.mu.Unlock()
	return n.train.innerSteps
}

// recentLoss is the mean of the last few losses the stage saw.
func (n *Node) recentLoss() float32 {
	n.train.mu.Lock()
	defer n.train.mu.Unlock()
	ls := n.train.losses
	if len(ls) == 0 {
		return 0
	}
	k := min(len(ls), 10)
	return float32(meanLoss(ls[len(ls)-k:]))
}

func meanLoss(ls []float32) float64 {
	s := 0.0
	for _, l := range ls {
		s += float64(l)
	}
	return s / float64(len(ls))
}
