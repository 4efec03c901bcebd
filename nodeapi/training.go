package nodeapi

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/neuroshard/neuroshard/diloco"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/ledger/neuro"
	"github.com/neuroshard/neuroshard/p2p"
)

// satAdd adds counters of peers' reports without overflowing.
func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// TrainingGlobal implements httpapi.Backend from the gossiped reports and the node's state.
func (a *API) TrainingGlobal(ctx context.Context) apitypes.TrainingGlobal {
	v := a.node.Training()
	g := apitypes.TrainingGlobal{DataShardsCovered: []int{}, GlobalMinLoss: math.Inf(1)}
	current := map[peer.ID]diloco.Report{}
	for p, rs := range v.Reports {
		if rs.Fresh {
			current[p] = rs.Report
		}
	}
	trend := diloco.LossTrend(v.MyLosses)
	// Hash agreement: within each span, among the replicas at the span's newest round, the
	// share naming the most common hash, by the stake backing them where any has stake
	// (diloco.Agreement); the spans' shares averaged by their replicas.
	type key struct{ first, last int }
	bySpan := map[key]map[string]diloco.Report{}
	shards := map[int]bool{}
	sum := 0.0
	for p, r := range current {
		k := key{r.First, r.Last}
		if bySpan[k] == nil {
			bySpan[k] = map[string]diloco.Report{}
		}
		bySpan[k][p.String()] = r
		sum += r.Loss
		g.GlobalMinLoss = math.Min(g.GlobalMinLoss, r.Loss)
		g.GlobalSteps = satAdd(g.GlobalSteps, r.Steps)
		g.GlobalTokens = satAdd(g.GlobalTokens, r.Tokens)
		shards[r.Shard] = true
	}
	agree, total, most := 0.0, 0, 0 // most: the largest group of replicas agreeing in one span
	for _, rs := range bySpan {
		share, at, agreeing := diloco.Agreement(rs, a.StakeOf)
		agree += share * float64(at)
		total += at
		most = max(most, agreeing)
	}
	if len(current) > 0 {
		g.GlobalAvgLoss = sum / float64(len(current))
	} else {
		g.GlobalMinLoss = 0
	}
	if total > 0 {
		g.HashAgreementRate = agree / float64(total)
	}
	for s := range shards {
		g.DataShardsCovered = append(g.DataShardsCovered, s)
	}
	slices.Sort(g.DataShardsCovered)
	g.TotalNodesTraining = len(current)
	rs := v.Round
	// A round taken alone syncs nothing: it counts as solo, not as a successful sync.
	g.SuccessfulSyncs, g.FailedSyncs, g.SoloRounds = rs.Shared, rs.Failed, max(0, rs.OK-rs.Shared)
	rounds, stepsAtEnd := rs.Round, rs.StepsAtEnd
	if g.SuccessfulSyncs+g.FailedSyncs > 0 {
		g.SyncSuccessRate = float64(g.SuccessfulSyncs) / float64(g.SuccessfulSyncs+g.FailedSyncs)
	}
	g.LossTrend = trend
	g.IsConverging = total > 0 && g.HashAgreementRate == 1
	// Verified: at least two replicas of a span agree on the weights of a recent round, and
	// the loss is not rising (a plateau is fine).
	// The replicas this node's last round used ended it bit-identical (each recomputes the
	// aggregate), so they agree too, even when one has gossiped its next round already.
	hist := map[string][]diloco.Report{}
	for p, h := range v.History {
		if v.Reports[p].Fresh {
			hist[p.String()] = h
		}
	}
	g.AgreeingReplicas = max(most, len(rs.LastUsed), diloco.MostAgreeing(hist))
	g.TrainingVerified = g.IsConverging && g.AgreeingReplicas >= 2 && trend != "worsening" && rounds > 0
	s := a.settings.Get().Training
	inner, driving := v.InnerSteps, v.Driving
	g.Local = apitypes.TrainingLocal{NodeID: a.node.ID(), TrainingRounds: rounds, CurrentLoss: v.Loss,
		IsTraining: s.Enabled && (driving || inner > 0), ModelHash: a.modelHash()}
	g.DiLoCo = apitypes.DiLoCoStatus{Enabled: s.Enabled, InnerStepCount: inner - stepsAtEnd, InnerStepsTotal: s.DiLoCoSteps,
		Progress: math.Min(1, float64(inner-stepsAtEnd)/float64(s.DiLoCoSteps)), OuterStepCount: rounds,
		OuterLR: s.OuterLR, OuterMomentum: s.OuterMomentum, RecentExclusions: exclusions(v.Exclusions), LastRoundError: rs.LastFailure}
	return g
}

// TrainingVerify implements httpapi.Backend: a yes/no answer with the reason.
func (a *API) TrainingVerify(ctx context.Context) apitypes.TrainingVerify {
	g := a.TrainingGlobal(ctx)
	m := map[string]any{"loss_trend": g.LossTrend, "hash_agreement": fmt.Sprintf("%.1f%%", 100*g.HashAgreementRate), "global_loss": g.GlobalAvgLoss}
	m["agreeing_replicas"] = g.AgreeingReplicas
	switch {
	case g.TrainingVerified:
		return apitypes.TrainingVerify{IsWorking: true, Reason: fmt.Sprintf("Training verified: %d replicas agree on the weights of a recent round and the loss is %s.", g.AgreeingReplicas, g.LossTrend), Metrics: m}
	case g.TotalNodesTraining == 0:
		return apitypes.TrainingVerify{Reason: "No training reports yet.", Metrics: m, Action: "Wait for the first DiLoCo round, or check that training is enabled (PATCH /api/v1/config)."}
	case !g.IsConverging:
		return apitypes.TrainingVerify{Reason: fmt.Sprintf("Network NOT converging! Only %.1f%% hash agreement.", 100*g.HashAgreementRate), Metrics: m,
			Action: "Nodes have diverged. Check gradient sync is working."}
	case g.Local.TrainingRounds == 0:
		return apitypes.TrainingVerify{Reason: "No DiLoCo round completed yet.", Metrics: m, Action: "Wait for the first outer step."}
	case g.AgreeingReplicas < 2:
		return apitypes.TrainingVerify{Reason: "No second replica agrees on a span's newest round yet: one replica alone proves nothing.", Metrics: m,
			Action: "Start another node holding the same layers (--layers), or wait for the replicas to share a round."}
	}
	return apitypes.TrainingVerify{Reason: fmt.Sprintf("Loss is %s.", g.LossTrend), Metrics: m, Action: "Check the learning rate and the data."}
}

// exclusions are the replicas rounds left out, for the API.
func exclusions(ex []diloco.Exclusion) []apitypes.Exclusion {
	out := make([]apitypes.Exclusion, 0, len(ex))
	for _, e := range ex {
		out = append(out, apitypes.Exclusion{Round: e.Round, Peer: e.Peer, Reason: e.Reason})
	}
	return out
}

// TrainingView is the node's training as the API shows it.
type TrainingView struct {
	Reports    map[peer.ID]ReportSeen      // the latest report of each peer, this node's included
	History    map[peer.ID][]diloco.Report // the recent reports of the peers whose reports count
	MyLosses   []float64                   // the losses this node reported, oldest first
	Round      diloco.State
	Exclusions []diloco.Exclusion // newest first
	InnerSteps int64
	Driving    bool // this node runs training micro-batches through a route now
	Loss       float64
}

// ReportSeen is one peer's latest training report and when it came.
type ReportSeen struct {
	Report diloco.Report
	At     time.Time
	Fresh  bool // recent enough to count the peer as training
}

// trainingStatus is the training section of /status: the node's rounds (epochs), inner steps
// and recent loss (zeros before the node has trained; enabled says whether it trains).
func (a *API) trainingStatus() *apitypes.TrainingStatus {
	v := a.node.Training()
	tr := a.settings.Get().Training
	return &apitypes.TrainingStatus{Enabled: tr.Enabled, Epoch: v.Round.Round, Step: v.InnerSteps, Loss: v.Loss,
		Compression: tr.Compression, ExchangeBytesSent: v.Round.SentBytes}
}

// newestRound is the highest round any fresh report (this node's included) names.
func (a *API) newestRound() int64 {
	newest := int64(0)
	for _, rs := range a.node.Training().Reports {
		if rs.Fresh {
			newest = max(newest, rs.Report.Round)
		}
	}
	return newest
}

// StakeOf is the stake (in NEURO) of the account the ledger binds to a peer, 0 if none.
func (a *API) StakeOf(p string) float64 {
	id, err := peer.Decode(p)
	if err != nil {
		return 0
	}
	return a.stakeOf(id).Float()
}

// stakeOf is the stake backing a peer ID, 0 if none.
func (a *API) stakeOf(id peer.ID) neuro.Amount {
	raw, err := p2p.RawKey(id)
	if err != nil {
		return 0
	}
	b, ok, err := a.ledger.Backing(raw)
	if err != nil || !ok {
		return 0
	}
	return b.Account.Staked
}
