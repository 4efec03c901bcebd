package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/nodeapi"
)

// TrainingReport is what a replica gossips after each round (and every reportInterval): its
// span, round, weights hash and loss, so anyone can check that training works.
type TrainingReport struct {
	Model  string  `json:"model"`
	First  int     `json:"first"`
	Last   int     `json:"last"`
	Round  int64   `json:"round"`
	Hash   string  `json:"hash"`
	Loss   float64 `json:"loss"`
	Steps  int64   `json:"steps"`
	Tokens int64   `json:"tokens"`
	Shard  int     `json:"shard"`
	Time   int64   `json:"time"` // unix seconds
}

// reportInterval republishes the node's report so late joiners learn it.
const reportInterval = 10 * time.Second

// reportTTL drops reports of peers that went quiet.
const reportTTL = 2 * time.Minute

func (n *Node) trainingTopic() string { return "/neuroshard/training/1.0.0/" + n.model.Name }

// validReport is the topic's validator: a well-formed report for this model.
func (n *Node) validReport(from peer.ID, data []byte) bool {
	var r TrainingReport
	if len(data) > 4096 || json.Unmarshal(data, &r) != nil {
		return false
	}
	h, err := hex.DecodeString(r.Hash)
	return err == nil && len(h) == 32 && r.Model == n.model.Name && r.First >= 0 && r.Last >= r.First &&
		r.Last < n.model.Layers && r.Round >= 0 && r.Steps >= 0 && r.Tokens >= 0 && r.Shard >= 0 &&
		!math.IsNaN(r.Loss) && r.Loss >= 0 && r.Loss < 1e3
}

type reports struct {
	mu   sync.Mutex
	by   map[peer.ID]reportAt
	mine []float64 // the node's own reported losses, oldest first
}

type reportAt struct {
	r  TrainingReport
	at time.Time
}

func (n *Node) startGossip() error {
	n.reports.by = map[peer.ID]reportAt{}
	t, err := n.host.JoinTopic(n.trainingTopic(), n.validReport, func(from peer.ID, data []byte) {
		var r TrainingReport
		if json.Unmarshal(data, &r) == nil {
			n.reports.mu.Lock()
			n.reports.by[from] = reportAt{r, time.Now()}
			n.reports.mu.Unlock()
			n.maybePush(from, r)
			n.wake()
		}
	})
	if err != nil {
		return err
	}
	n.topic = t
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		tk := time.NewTicker(reportInterval)
		defer tk.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-tk.C:
				n.train.mu.Lock()
				active := n.train.innerSteps > 0
				n.train.mu.Unlock()
				if active {
					n.publishTraining()
				}
			}
		}
	}()
	return nil
}

// myReport is the node's current report.
func (n *Node) myReport() TrainingReport {
	span := n.Span()
	rs := n.roundState()
	round, hash := rs.Round, rs.Hash
	n.train.mu.Lock()
	steps, tokens := n.train.innerSteps, n.train.tokens
	n.train.mu.Unlock()
	return TrainingReport{Model: n.model.Name, First: span.First, Last: span.Last, Round: round, Hash: hash,
		Loss: float64(n.recentLoss()), Steps: steps, Tokens: tokens, Time: time.Now().Unix()}
}

// publishTraining gossips the node's report.
func (n *Node) publishTraining() {
	r := n.myReport()
	n.reports.mu.Lock()
	n.reports.by[n.host.ID()] = reportAt{r, time.Now()}
	if r.Loss > 0 {
		n.reports.mine = append(n.reports.mine, r.Loss)
		if len(n.reports.mine) > lossHistory {
			n.reports.mine = n.reports.mine[1:]
		}
	}
	n.reports.mu.Unlock()
	data, _ := json.Marshal(r)
	ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
	defer cancel()
	if err := n.topic.Publish(ctx, data); err != nil && n.ctx.Err() == nil {
		logger().Debug("training report not published", "err", err)
	}
}

// lossTrend compares the first and second halves of a loss history.
func lossTrend(ls []float64) string {
	if len(ls) < 4 {
		return "unknown"
	}
	a, b := 0.0, 0.0
	half := len(ls) / 2
	for _, x := range ls[:half] {
		a += x
	}
	for _, x := range ls[half:] {
		b += x
	}
	a, b = a/float64(half), b/float64(len(ls)-half)
	switch {
	case b < a*0.99:
		return "improving"
	case b > a*1.01:
		return "worsening"
	}
	return "stable"
}

// TrainingGlobal implements httpapi.Backend from the gossiped reports and the node's state.
func (n *Node) TrainingGlobal(ctx context.Context) apitypes.TrainingGlobal {
	g := apitypes.TrainingGlobal{DataShardsCovered: []int{}, GlobalMinLoss: math.Inf(1)}
	n.reports.mu.Lock()
	current := map[peer.ID]TrainingReport{}
	for p, ra := range n.reports.by {
		if time.Since(ra.at) < reportTTL {
			current[p] = ra.r
		}
	}
	trend := lossTrend(n.reports.mine)
	n.reports.mu.Unlock()
	// Hash agreement: within each span, replicas at the span's newest round that share the
	// most common hash, over all replicas at that round.
	type key struct{ first, last int }
	bySpan := map[key][]TrainingReport{}
	shards := map[int]bool{}
	sum := 0.0
	for _, r := range current {
		bySpan[key{r.First, r.Last}] = append(bySpan[key{r.First, r.Last}], r)
		sum += r.Loss
		g.GlobalMinLoss = math.Min(g.GlobalMinLoss, r.Loss)
		g.GlobalSteps += r.Steps
		g.GlobalTokens += r.Tokens
		shards[r.Shard] = true
	}
	agree, total := 0, 0
	for _, rs := range bySpan {
		newest := int64(-1)
		for _, r := range rs {
			newest = max(newest, r.Round)
		}
		counts := map[string]int{}
		n := 0
		for _, r := range rs {
			if r.Round == newest {
				counts[r.Hash]++
				n++
			}
		}
		best := 0
		for _, c := range counts {
			best = max(best, c)
		}
		agree += best
		total += n
	}
	if len(current) > 0 {
		g.GlobalAvgLoss = sum / float64(len(current))
	} else {
		g.GlobalMinLoss = 0
	}
	if total > 0 {
		g.HashAgreementRate = float64(agree) / float64(total)
	}
	for s := range shards {
		g.DataShardsCovered = append(g.DataShardsCovered, s)
	}
	slices.Sort(g.DataShardsCovered)
	g.TotalNodesTraining = len(current)
	rs := n.roundState()
	g.SuccessfulSyncs, g.FailedSyncs = rs.OK, rs.Failed
	rounds, stepsAtEnd := rs.Round, rs.StepsAtEnd
	if g.SuccessfulSyncs+g.FailedSyncs > 0 {
		g.SyncSuccessRate = float64(g.SuccessfulSyncs) / float64(g.SuccessfulSyncs+g.FailedSyncs)
	}
	g.LossTrend = trend
	g.IsConverging = total > 0 && g.HashAgreementRate == 1
	g.TrainingVerified = g.IsConverging && trend == "improving" && rounds > 0
	s := n.settings.Get().Training
	n.train.mu.Lock()
	inner, driving := n.train.innerSteps, n.train.driving
	n.train.mu.Unlock()
	g.Local = apitypes.TrainingLocal{NodeID: n.ID(), TrainingRounds: rounds, CurrentLoss: float64(n.recentLoss()),
		IsTraining: s.Enabled && (driving || inner > 0), ModelHash: n.modelHash()}
	g.DiLoCo = apitypes.DiLoCoStatus{Enabled: s.Enabled, InnerStepCount: inner - stepsAtEnd, InnerStepsTotal: s.DiLoCoSteps,
		Progress: math.Min(1, float64(inner-stepsAtEnd)/float64(s.DiLoCoSteps)), OuterStepCount: rounds,
		OuterLR: s.OuterLR, OuterMomentum: s.OuterMomentum, RecentExclusions: n.recentExclusions()}
	return g
}

// TrainingVerify implements httpapi.Backend: a yes/no answer with the reason.
func (n *Node) TrainingVerify(ctx context.Context) apitypes.TrainingVerify {
	g := n.TrainingGlobal(ctx)
	m := map[string]any{"loss_trend": g.LossTrend, "hash_agreement": fmt.Sprintf("%.1f%%", 100*g.HashAgreementRate), "global_loss": g.GlobalAvgLoss}
	switch {
	case g.TrainingVerified:
		return apitypes.TrainingVerify{IsWorking: true, Reason: "Training verified! Loss is decreasing and network is converging.", Metrics: m}
	case g.TotalNodesTraining == 0:
		return apitypes.TrainingVerify{Reason: "No training reports yet.", Metrics: m, Action: "Wait for the first DiLoCo round, or check that training is enabled (PATCH /api/v1/config)."}
	case !g.IsConverging:
		return apitypes.TrainingVerify{Reason: fmt.Sprintf("Network NOT converging! Only %.1f%% hash agreement.", 100*g.HashAgreementRate), Metrics: m,
			Action: "Nodes have diverged. Check gradient sync is working."}
	case g.Local.TrainingRounds == 0:
		return apitypes.TrainingVerify{Reason: "No DiLoCo round completed yet.", Metrics: m, Action: "Wait for the first outer step."}
	}
	return apitypes.TrainingVerify{Reason: fmt.Sprintf("Loss is %s, not improving.", g.LossTrend), Metrics: m, Action: "Check the learning rate and the data."}
}

// TrainingStatus is the training section of /status: the node's rounds (epochs), inner steps
// and recent loss; absent before the node has trained.
func (n *Node) TrainingStatus() *apitypes.TrainingStatus {
	n.train.mu.Lock()
	steps := n.train.innerSteps
	n.train.mu.Unlock()
	rs := n.roundState()
	rounds, sent := rs.Round, rs.SentBytes
	if steps == 0 && rounds == 0 {
		return nil
	}
	tr := n.settings.Get().Training
	return &apitypes.TrainingStatus{Enabled: tr.Enabled, Epoch: rounds, Step: steps, Loss: float64(n.recentLoss()),
		Compression: tr.Compression, ExchangeBytesSent: sent}
}

// NewestRound is the highest round any fresh report (this node's included) names.
func (n *Node) NewestRound() int64 {
	n.reports.mu.Lock()
	defer n.reports.mu.Unlock()
	newest := int64(0)
	for _, ra := range n.reports.by {
		if time.Since(ra.at) < reportTTL {
			newest = max(newest, ra.r.Round)
		}
	}
	return newest
}

// PeerReports is the latest training report of each peer (this node's included) and when it
// came.
func (n *Node) PeerReports() map[peer.ID]nodeapi.PeerTraining {
	n.reports.mu.Lock()
	defer n.reports.mu.Unlock()
	out := make(map[peer.ID]nodeapi.PeerTraining, len(n.reports.by))
	for p, ra := range n.reports.by {
		out[p] = nodeapi.PeerTraining{Round: ra.r.Round, Loss: ra.r.Loss, At: ra.at, Fresh: time.Since(ra.at) < reportTTL}
	}
	return out
}
