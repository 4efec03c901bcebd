package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/diloco/replicanet"
	"github.com/neuroshard/neuroshard/layers"
)

// Moving between spans (as Petals rebalances): every cfg.Rebalance, jittered, the node asks the
// balance rule about a fresh coverage view (coverage.Balancer); when it says so, it takes the new
// span's weights (replicanet's WeightsFor), stops the old span's loops, swaps its stage, served
// weights and replica, and announces the new layers. Open sessions end on the old span.

// spanLoops are the held span's round loop and, on a stage holding layer 0, training driver.
type spanLoops struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startSpan starts the loops of the span the node holds now (the driver once measured).
func (n *Node) startSpan() {
	l := &spanLoops{}
	l.ctx, l.cancel = context.WithCancel(n.ctx)
	n.mu.Lock()
	n.loops = l
	n.mu.Unlock()
	loop := replicanet.Loop{Replica: n.replica(), Catchup: n.catch, Steps: n.innerSteps, Started: n.Started, Wake: n.roundWake,
		H: func() int64 { return int64(n.settings.Get().Training.DiLoCoSteps) }}
	n.spawn(l, func() { loop.Run(l.ctx) })
	if n.measured.Load() {
		n.startDriver(l)
	}
}

// startDriver drives training through l's span when it holds layer 0.
func (n *Node) startDriver(l *spanLoops) {
	if l != nil && n.Span().First == 0 {
		n.spawn(l, func() { n.driveLoop(l.ctx) })
	}
}

// spawn runs f as one of l's loops, counted in the node's wait group too (unless closed).
func (n *Node) spawn(l *spanLoops, f func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed && l.ctx.Err() == nil {
		n.wg.Add(1)
		l.wg.Go(func() { defer n.wg.Done(); f() })
	}
}

// balanceLoop looks at the balance rule every cfg.Rebalance (jittered, so nodes advised alike
// do not move at once: the second sees the first's move) and moves when it says so.
func (n *Node) balanceLoop() {
	defer n.wg.Done()
	var b coverage.Balancer
	for {
		sleepCtx(n.ctx, n.cfg.Rebalance/2+rand.N(n.cfg.Rebalance))
		if n.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		v := n.cov.Lookup(ctx)
		cancel()
		listened := time.Since(n.Started()) > 2*replicanet.ReportInterval
		b.Allowed = func(sp layers.Span) bool {
			return len(v.HoldersOf(sp, n.host.ID())) > 0 || listened && !n.catch.Trained(sp)
		}
		if m, ok := b.Look(n.model, v, n.host.ID(), n.Span(), n.MemoryBudget()); ok {
			if err := n.moveTo(m.To, v, listened); err != nil && n.ctx.Err() == nil {
				logger().Warn("not moving to under-served layers", "to", m.To.String(), "err", err)
			}
		}
	}
}

// moveTo makes the node hold span to instead of its current one (balanceLoop's alone).
func (n *Node) moveTo(to layers.Span, v coverage.View, listened bool) error {
	from := n.Span()
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	params, round, velocity, err := n.catch.WeightsFor(ctx, to, v.HoldersOf(to, n.host.ID()), n.cfg.ModelSeed, listened)
	cancel()
	if err != nil {
		return err
	}
	stage, err := layers.NewStage(n.model, to, params, layers.InBackground(n.servingNow, n.trainYieldLimit()))
	if err != nil {
		return err
	}
	meta := layers.CheckpointMeta{Model: n.model.Name, Span: to, Round: round}
	if err := layers.SaveCheckpoint(n.checkpointPath(to), meta, params); err != nil {
		return fmt.Errorf("node: save the new span's checkpoint: %w", err)
	}
	n.mu.Lock()
	l := n.loops
	n.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	defer n.startSpan() // the loops of whichever span the node holds after this
	// Inference switches at once (a request runs on the served stage it finds, of its span).
	if err := n.publishServing(to, params); err != nil {
		return err
	}
	n.initSync(stage, round)
	if velocity != nil {
		if err := n.replica().Adopt(round, params, velocity, n.innerSteps()); err != nil {
			logger().Warn("the new span's outer momentum was not taken", "err", err)
		}
	}
	n.mu.Lock()
	n.span, n.stage = to, stage // the commit: Span() says the new span once all of it is in place
	n.mu.Unlock()
	n.host.SetAnnounced(coverage.LayerKeys(n.model.Name, to))
	n.publishRecord()
	n.cov.Expire(0)
	logger().Info("moved to under-served layers", "from", from.String(), "to", to.String(), "round", round)
	return nil
}
