package node

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"time"

	"github.com/neuroshard/neuroshard"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/pipeline"
)

// driverRetry is how long the driver waits before trying again after a failed route.
const driverRetry = 2 * time.Second

// trainSeq is the sequence length of training micro-batches.
const trainSeq = 64

// corpus loads the training corpus: --data, or the one shipped in the binary.
func (n *Node) corpus() (*layers.Corpus, error) {
	data := neuroshard.Shakespeare
	if n.cfg.DataFile != "" {
		raw, err := os.ReadFile(n.cfg.DataFile)
		if err != nil {
			return nil, fmt.Errorf("node: --data: %w", err)
		}
		data = raw
	}
	return layers.NewCorpus(data, 0.1)
}

// driveLoop trains while this node holds layer 0 and training is on: it reads micro-batches
// from its corpus and runs them through a training route.
func (n *Node) driveLoop(ctx context.Context) {
	corpus, err := n.corpus()
	if err != nil {
		logger().Error("training disabled: no corpus", "err", err)
		return
	}
	h := fnv.New64a()
	h.Write([]byte(n.host.ID()))
	seq := min(trainSeq, n.model.Context)
	var batcher *layers.Batcher
	batchSize := 0
	var id uint64
	for ctx.Err() == nil {
		s := n.settings.Get().Training
		if !s.Enabled {
			sleepCtx(ctx, driverRetry)
			continue
		}
		if batcher == nil || batchSize != s.BatchSize {
			if batcher, err = layers.NewBatcher(corpus.Train, s.BatchSize, seq, h.Sum64()); err != nil {
				logger().Error("training disabled", "err", err)
				return
			}
			batchSize = s.BatchSize
		}
		hops, err := n.pipe.OpenTrainRoute(ctx, n.trainRank(ctx), n.applyInner)
		if err != nil {
			logger().Debug("no training route yet", "err", err)
			sleepCtx(ctx, driverRetry)
			continue
		}
		n.setDriving(true)
		trained := 0 // tokens the route's stages processed since their last receipt
		planned := time.Now()
		for ctx.Err() == nil && n.settings.Get().Training.Enabled && n.settings.Get().Training.BatchSize == batchSize {
			if time.Since(planned) > driverReplan {
				// A route planned from a view that did not yet show every replica had sent
				// every driver to the same downstream replica for good (the others took no
				// steps, and their span's rounds closed alone at each deadline).
				if n.pipe.TrainRouteStale(ctx, n.trainRank(ctx), hops) {
					break
				}
				planned = time.Now()
			}
			n.yieldToServing()
			tokens, targets := batcher.Next()
			id++
			if _, err := pipeline.TrainBatch(ctx, hops, id, tokens, targets); err != nil {
				if ctx.Err() == nil {
					logger().Warn("training step failed; re-planning", "err", err)
				}
				break
			}
			if trained += batchSize * seq; id%receiptEvery == 0 {
				n.trainReceipts(hops, trained)
				trained = 0
			}
		}
		n.trainReceipts(hops, trained)
		n.setDriving(false)
		for _, h := range hops {
			h.Close()
		}
	}
}

// driverReplan is how often a driver checks that its training route is still the one it
// would plan now.
const driverReplan = 5 * time.Second

// trainRank is this node's place among its span's replicas: which downstream replica its
// training route takes, so the replicas' drivers spread over the next span's replicas.
func (n *Node) trainRank(ctx context.Context) int {
	return slices.Index(n.replicas(ctx), n.host.ID())
}

// yieldToServing holds the next training micro-step while the node serves inference (its own
// generations or sessions of peers), for at most the yield limit: serving comes first on the
// node's cores, and training still takes a step at least that often. A step already in flight
// yields too, between its ops (the training stage runs in the background: loadStage).
func (n *Node) yieldToServing() {
	limit := n.trainYieldLimit()
	defer n.yielding.Store(false)
	for deadline := time.Now().Add(limit); limit > 0 && time.Now().Before(deadline) && n.ctx.Err() == nil; {
		if !n.servingNow() {
			return
		}
		n.yielding.Store(true)
		n.sleep(yieldPoll)
	}
}

// trainYieldLimit is how long training waits for serving, before each micro-step and within
// each computation of the training stage; 0: never.
func (n *Node) trainYieldLimit() time.Duration {
	switch limit := n.cfg.TrainYield; {
	case limit == 0:
		return DefaultTrainYield
	case limit < 0:
		return 0
	default:
		return limit
	}
}

// servingNow reports whether the node serves inference: its own generations, or sessions of
// peers on its served stage.
func (n *Node) servingNow() bool { return n.pipe.Running() > 0 || n.pipe.Served() > 0 }

// yieldPoll is how often a yielding driver looks whether serving is over.
const yieldPoll = 5 * time.Millisecond

// receiptEvery is how many training steps a receipt for the route's stages covers.
const receiptEvery = 10

// trainReceipts countersigns the forward and backward work of the route's remote stages.
func (n *Node) trainReceipts(hops []pipeline.TrainHop, tokens int) {
	for _, h := range hops {
		if hop := h.Hop(); !hop.Self {
			n.lsync.SendReceipt(hop.Peer, ledger.ProofBackward, hop.Span.First, tokens)
		}
	}
}

func (n *Node) setDriving(on bool) {
	n.train.mu.Lock()
	n.train.driving = on
	n.train.mu.Unlock()
}

// sleep waits d or until the node closes.
func (n *Node) sleep(d time.Duration) { sleepCtx(n.ctx, d) }

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
