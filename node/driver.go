package node

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/neuroshard/neuroshard"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/ledger"
	"github.com/neuroshard/neuroshard/p2p"
	"github.com/neuroshard/neuroshard/pipeline"
)

// driverRetry is how long the driver waits before trying again after a failed route.
const driverRetry = 2 * time.Second

// trainSeq is the sequence length of training micro-batches.
const trainSeq = 64

// trainHop is one stage of a training route, local or remote.
type trainHop interface {
	Forward(ctx context.Context, id uint64, in *layers.Tensor) (*layers.Tensor, error)
	Loss(ctx context.Context, id uint64, in, targets *layers.Tensor) (float32, *layers.Tensor, error)
	Backward(ctx context.Context, id uint64, loss float32, gradOut *layers.Tensor) (*layers.Tensor, error)
	Close()
}

type localTrainHop struct{ s *servedTrain }

func (h localTrainHop) Forward(_ context.Context, id uint64, in *layers.Tensor) (*layers.Tensor, error) {
	out, err := h.s.Forward(id, pipeline.ToWire(in))
	if err != nil {
		return nil, err
	}
	return pipeline.FromWire(out), nil
}

func (h localTrainHop) Loss(_ context.Context, id uint64, in, targets *layers.Tensor) (float32, *layers.Tensor, error) {
	loss, g, err := h.s.Loss(id, pipeline.ToWire(in), pipeline.ToWire(targets))
	if err != nil || g == nil {
		return loss, nil, err
	}
	return loss, pipeline.FromWire(g), nil
}

func (h localTrainHop) Backward(_ context.Context, id uint64, loss float32, gradOut *layers.Tensor) (*layers.Tensor, error) {
	g, err := h.s.Backward(id, loss, pipeline.ToWire(gradOut))
	if err != nil || g == nil {
		return nil, err
	}
	return pipeline.FromWire(g), nil
}

func (h localTrainHop) Close() {}

type remoteTrainHop struct {
	c   *p2p.TrainClient
	hop pipeline.Hop
}

func (h remoteTrainHop) Forward(ctx context.Context, id uint64, in *layers.Tensor) (*layers.Tensor, error) {
	out, err := h.c.Forward(ctx, id, pipeline.ToWire(in))
	if err != nil {
		return nil, err
	}
	return pipeline.FromWire(out), nil
}

func (h remoteTrainHop) Loss(ctx context.Context, id uint64, in, targets *layers.Tensor) (float32, *layers.Tensor, error) {
	loss, g, err := h.c.Loss(ctx, id, pipeline.ToWire(in), pipeline.ToWire(targets))
	if err != nil || g == nil {
		return loss, nil, err
	}
	return loss, pipeline.FromWire(g), nil
}

func (h remoteTrainHop) Backward(ctx context.Context, id uint64, loss float32, gradOut *layers.Tensor) (*layers.Tensor, error) {
	g, err := h.c.Backward(ctx, id, loss, pipeline.ToWire(gradOut))
	if err != nil || g == nil {
		return nil, err
	}
	return pipeline.FromWire(g), nil
}

func (h remoteTrainHop) Close() { h.c.Close() }

// planTrainRoute chains whole spans from layer 0 to the last (training runs on whole spans
// only). Drivers spread over the replicas of each span: the driver ranked k among the holders
// of its own span takes the (k mod r)-th of the r holders of the next, by peer ID, so two
// drivers and two replicas pair up instead of crowding one.
func (n *Node) planTrainRoute(ctx context.Context) ([]pipeline.Hop, error) {
	hold := n.pipe.Holdings(ctx)
	rank := slices.Index(n.replicas(ctx), n.host.ID())
	var route []pipeline.Hop
	for l := 0; l < n.model.Layers; {
		var cands []pipeline.Hop
		for p, spans := range hold {
			for _, sp := range spans {
				if sp.First == l {
					cands = append(cands, pipeline.Hop{Peer: p, Span: sp, Self: p == n.host.ID()})
				}
			}
		}
		if len(cands) == 0 {
			return nil, apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeNodeUnavailable,
				fmt.Sprintf("no peer holds a span starting at layer %d", l), map[string]any{"layer": l})
		}
		slices.SortFunc(cands, func(a, b pipeline.Hop) int { return strings.Compare(string(a.Peer), string(b.Peer)) })
		pick := cands[max(rank, 0)%len(cands)]
		if l == 0 {
			pick = pipeline.Hop{Peer: n.host.ID(), Span: n.Span(), Self: true}
		}
		route = append(route, pick)
		l = pick.Span.Last + 1
	}
	return route, nil
}

func (n *Node) openTrainRoute(ctx context.Context) ([]trainHop, error) {
	route, err := n.planTrainRoute(ctx)
	if err != nil {
		return nil, err
	}
	var hops []trainHop
	closeAll := func() {
		for _, h := range hops {
			h.Close()
		}
	}
	for _, h := range route {
		if h.Self {
			hops = append(hops, localTrainHop{&servedTrain{n: n, stage: n.Stage(), inputs: map[uint64]pendingInput{}}})
			continue
		}
		c, err := n.host.OpenTrain(ctx, h.Peer, p2p.ForwardOpen{Model: n.model.Name, First: h.Span.First, Last: h.Span.Last, Batch: 1})
		if err != nil {
			closeAll()
			return nil, err
		}
		hops = append(hops, remoteTrainHop{c, h})
	}
	return hops, nil
}

// trainBatch runs one micro-batch forward and back through the route; every stage steps its
// inner optimizer when its gradients arrive.
func trainBatch(ctx context.Context, hops []trainHop, id uint64, tokens, targets *layers.Tensor) (float32, error) {
	x := tokens
	for _, h := range hops[:len(hops)-1] {
		out, err := h.Forward(ctx, id, x)
		if err != nil {
			return 0, err
		}
		x = out
	}
	loss, g, err := hops[len(hops)-1].Loss(ctx, id, x, targets)
	if err != nil {
		return 0, err
	}
	for i := len(hops) - 2; i >= 0; i-- {
		if g, err = hops[i].Backward(ctx, id, loss, g); err != nil {
			return 0, err
		}
	}
	return loss, nil
}

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
func (n *Node) driveLoop() {
	defer n.wg.Done()
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
	for n.ctx.Err() == nil {
		s := n.settings.Get().Training
		if !s.Enabled {
			n.sleep(driverRetry)
			continue
		}
		if batcher == nil || batchSize != s.BatchSize {
			if batcher, err = layers.NewBatcher(corpus.Train, s.BatchSize, seq, h.Sum64()); err != nil {
				logger().Error("training disabled", "err", err)
				return
			}
			batchSize = s.BatchSize
		}
		hops, err := n.openTrainRoute(n.ctx)
		if err != nil {
			logger().Debug("no training route yet", "err", err)
			n.sleep(driverRetry)
			continue
		}
		n.setDriving(true)
		trained := 0 // tokens the route's stages processed since their last receipt
		for n.ctx.Err() == nil && n.settings.Get().Training.Enabled && n.settings.Get().Training.BatchSize == batchSize {
			tokens, targets := batcher.Next()
			id++
			if _, err := trainBatch(n.ctx, hops, id, tokens, targets); err != nil {
				if n.ctx.Err() == nil {
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

// receiptEvery is how many training steps a receipt for the route's stages covers.
const receiptEvery = 10

// trainReceipts countersigns the forward and backward work of the route's remote stages.
func (n *Node) trainReceipts(hops []trainHop, tokens int) {
	for _, h := range hops {
		if r, ok := h.(remoteTrainHop); ok {
			n.lsync.SendReceipt(r.hop.Peer, ledger.ProofBackward, r.hop.Span.First, tokens)
		}
	}
}

func (n *Node) setDriving(on bool) {
	n.train.mu.Lock()
	n.train.driving = on
	n.train.mu.Unlock()
}

// sleep waits d or until the node closes.
func (n *Node) sleep(d time.Duration) {
	select {
	case <-n.ctx.Done():
	case <-time.After(d):
	}
}
