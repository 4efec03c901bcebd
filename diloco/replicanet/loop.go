package replicanet

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
)

// JoinGrace: a replica that has just started and sees no other holder of its span yet takes
// no round alone. Its coverage view and the gossip mesh take a second or two to show the
// replicas already there, more on a busy machine; rounds alone meanwhile only end in
// catch-ups (a second replica of short rounds took three in its first second, and with 3 s
// of grace two under load). Catch-ups run; inner steps go on and are kept.
const JoinGrace = 6 * time.Second

// freshWait bounds how long a replica that has finished no round waits for a catch-up to
// the span's round before it goes on alone.
const freshWait = 30 * time.Second

// roundCheck is how often the loop looks at the gossip for a replica ahead when nothing woke
// it.
const roundCheck = time.Second

// Loop runs a replica's rounds: one each time the stage has taken H inner steps since the
// last, a catch-up when gossip shows a replica ahead. Inner steps and reports wake it (Wake);
// a tick looks again every second.
type Loop struct {
	Replica *diloco.Replica
	Catchup *Catchup
	H       func() int64     // inner steps a round (the settings may change it)
	Steps   func() int64     // inner steps the stage has taken
	Started func() time.Time // when the node started running
	Wake    <-chan struct{}
}

// Run loops until ctx ends.
func (l *Loop) Run(ctx context.Context) {
	t := time.NewTicker(roundCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.Wake:
		case <-t.C:
		}
		if ctx.Err() != nil { // select picks at random when both are ready
			return
		}
		l.step(ctx)
	}
}

func (l *Loop) step(ctx context.Context) {
	c, rep := l.Catchup, l.Replica
	steps := l.Steps()
	if steps-rep.State().StepsAtEnd < l.H() {
		c.CatchUp()
		return
	}
	if started := l.Started(); !started.IsZero() && time.Since(started) < JoinGrace && len(c.RoundMembers(ctx)) <= 1 {
		c.CatchUp()
		return
	}
	if from, ahead := c.NewerReplica(); ahead && c.From(from) {
		rep.Skip(steps, false) // behind the others: this round's work is moot; their theta_0 is taken
		return
	}
	if rep.State().Round == 0 && time.Since(l.Started()) < freshWait && c.Behind() {
		// A replica that has not finished a round yet and sees the span ahead waits for its
		// catch-up (backing off after a refusal) instead of taking a round alone; bounded, so
		// a report that cannot be followed never stops its training.
		return
	}
	err := rep.RunRound(ctx, steps)
	var re *diloco.ResyncError
	if errors.As(err, &re) {
		logger().Info("weights behind the round; fetching the span's checkpoint", "from", re.From, "reason", re.Reason)
		id, derr := peer.Decode(re.From)
		if err = derr; err == nil {
			err = c.Resync(ctx, id, steps)
		}
	}
	if errors.Is(err, diloco.ErrReplan) {
		logger().Info("DiLoCo round handed to another aggregator; planning it again", "reason", err)
		return // the same work goes to the round's aggregator
	}
	if err != nil && ctx.Err() == nil {
		logger().Warn("DiLoCo round failed", "err", err)
		rep.Fail(steps, err) // try again after H more steps
	}
}

// RoundMembers are the replicas a round plans with: the span's holders in the coverage view,
// this node, and connected peers whose fresh report names the span (a holder whose provider
// record a lookup has not found yet). Two replicas that saw different holders chose
// different aggregators and split the span's rounds. Catch-up quorums count the coverage
// view alone.
func (c *Catchup) RoundMembers(ctx context.Context) []peer.ID {
	out := c.Holders(ctx)
	if !slices.Contains(out, c.Host.ID()) {
		out = append(out, c.Host.ID())
	}
	span := c.Span()
	for p, r := range c.Reports.Fresh() {
		id, err := peer.Decode(p)
		if err != nil || r.Model != c.Model.Name || r.First != span.First || r.Last != span.Last || slices.Contains(out, id) {
			continue
		}
		if c.Host.Libp2p().Network().Connectedness(id) == network.Connected {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
