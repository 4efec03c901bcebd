package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/client"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// Two nodes, half of the tiny model each: the driver (layer 0) trains through the training
// stream; both stages take inner steps and the loss falls.
func TestPipelineTrainingAcrossNodes(t *testing.T) {
	on := true
	var nodes []*Node
	for i, span := range []string{"0-1", "2-3"} {
		cfg := testConfig(t)
		cfg.Model, cfg.Layers, cfg.Train = "neuroshard-tiny", span, &on
		if i > 0 {
			cfg.Bootstrap = nodes[0].Multiaddrs()
		}
		n := startNode(t, cfg)
		lr, bs := 3e-3, 8
		if _, err := apiClient(n).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{LearningRate: &lr, BatchSize: &bs}}); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	const steps = 60
	eventually(t, 3*time.Minute, "60 inner steps on both stages", func() bool {
		for _, n := range nodes {
			n.train.mu.Lock()
			s := n.train.innerSteps
			n.train.mu.Unlock()
			if s < steps {
				return false
			}
		}
		return true
	})
	nodes[0].train.mu.Lock()
	losses := append([]float32{}, nodes[0].train.losses...)
	nodes[0].train.mu.Unlock()
	first, last := meanLoss(losses[:5]), meanLoss(losses[len(losses)-5:])
	t.Logf("driver loss %.3f -> %.3f over %d steps", first, last, len(losses))
	if first-last < 1.0 {
		t.Fatalf("loss fell by only %.3f", first-last)
	}
	if nodes[0].Stage().Hash() == nodes[0].model.InitParams(nodes[0].Span(), 0).Hash() {
		t.Fatal("the first stage's weights did not change")
	}
}

// startTrainingNetwork starts nodes with the given spans of the tiny model, training on with
// a fast learning rate and H inner steps per round.
func startTrainingNetwork(t *testing.T, h int, spans ...string) []*Node {
	t.Helper()
	return startTrainingNetworkOf(t, "neuroshard-tiny", h, spans...)
}

func startTrainingNetworkOf(t *testing.T, model string, h int, spans ...string) []*Node {
	t.Helper()
	var nodes []*Node
	for i, span := range spans {
		var boot *Node
		if i > 0 {
			boot = nodes[0]
		}
		nodes = append(nodes, startTrainingNode(t, model, h, boot, span))
	}
	return nodes
}

// startTrainingNode starts one training node of span, joining boot's network (none:
// the first node).
func startTrainingNode(t *testing.T, model string, h int, boot *Node, span string) *Node {
	t.Helper()
	on := true
	cfg := testConfig(t)
	cfg.Model, cfg.Layers, cfg.Train, cfg.RoundTimeout = model, span, &on, 20*time.Second
	if boot != nil {
		cfg.Bootstrap = boot.Multiaddrs()
	}
	n := startNode(t, cfg, unlimited) // the tests poll the API in loops
	lr, bs := 3e-3, 4
	if _, err := apiClient(n).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{
		LearningRate: &lr, BatchSize: &bs, DiLoCoSteps: &h}}); err != nil {
		t.Fatal(err)
	}
	return n
}

func rounds(n *Node) (int64, string) {
	st := n.roundState()
	return st.Round, st.Hash
}

// Four nodes, two spans of the small model with two replicas each: after every round the
// replicas of a span hold bit-identical weights, the loss falls, and /api/training/verify says
// training works.
func TestDiLoCoReplicasAgreeAndVerify(t *testing.T) {
	nodes := startTrainingNetworkOf(t, "neuroshard-small", 6, "0-3", "0-3", "4-7", "4-7")
	// Replicas may compress differently (the default is fp16): they still agree bit for bit.
	for i, c := range map[int]string{1: "int8", 3: "none"} {
		if _, err := apiClient(nodes[i]).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{Compression: &c}}); err != nil {
			t.Fatal(err)
		}
	}
	bad := "zip"
	if _, err := apiClient(nodes[0]).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{Compression: &bad}}); !client.IsCode(err, apitypes.CodeInvalidRequest) {
		t.Fatalf("unknown compression: %v", err)
	}
	for r := int64(1); r <= 3; r++ {
		eventually(t, 4*time.Minute, fmt.Sprintf("round %d on every node", r), func() bool {
			for _, n := range nodes {
				if got, _ := rounds(n); got < r {
					return false
				}
			}
			return true
		})
		// After each round the replicas of each span hold the same weights (compared when
		// both stand at the same round, r or later: training goes on while the test looks).
		for _, pair := range [][2]*Node{{nodes[0], nodes[1]}, {nodes[2], nodes[3]}} {
			eventually(t, 2*time.Minute, fmt.Sprintf("replicas agreeing after round %d", r), func() bool {
				ra, ha := rounds(pair[0])
				rb, hb := rounds(pair[1])
				return ra == rb && ra >= r && ha == hb
			})
		}
	}
	var v apitypes.TrainingVerify
	eventually(t, 3*time.Minute, "/api/training/verify to say training works", func() bool {
		err := apiClient(nodes[0]).Do(context.Background(), http.MethodGet, "/api/training/verify", nil, &v)
		return err == nil && v.IsWorking
	})
	var g apitypes.TrainingGlobal
	eventuallyShowing(t, 3*time.Minute, "a node of the other span to verify training too, its loss falling", func() (bool, any) {
		var err error
		g, err = apiClient(nodes[2]).TrainingGlobal(context.Background())
		// A round may close alone when a contribution comes late on a busy machine (reported
		// as solo, not as a sync): wait for three shared ones.
		return err == nil && g.TrainingVerified && g.LossTrend == "improving" && g.SuccessfulSyncs >= 3, g
	})
	// Its figures are its own span's members: the replicas of 0-3, which it has not audited,
	// vouch for nothing there (TestReportsCountOnlyFromRoundMembers).
	if g.HashAgreementRate != 1 || g.TotalNodesTraining != 2 || g.SuccessfulSyncs < 3 || g.LossTrend != "improving" {
		t.Fatalf("training global: %+v", g)
	}
	// It answers from snapshots while the node trains: the median of 20 calls through the
	// REST API under 50 ms (it took 0.4-9 s when it waited on the training stage).
	var took []time.Duration
	for range 20 {
		start := time.Now()
		if _, err := apiClient(nodes[0]).TrainingGlobal(context.Background()); err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	if took[len(took)/2] > 50*time.Millisecond {
		t.Fatalf("/api/training/global while training: median %v (all %v)", took[len(took)/2], took)
	}
	t.Logf("/api/training/global while training: median %v, slowest %v", took[len(took)/2], took[len(took)-1])
	// The dashboard's round history: rounds shared with the other replica, both naming the
	// same weights after each.
	eventually(t, time.Minute, "a charted round both replicas of span 0-3 agree on", func() bool {
		for _, p := range nodes[0].api.TrainingRounds(context.Background()).Rounds {
			if p.Members == 2 && p.Agreeing == 2 && p.Agreement == 1 && !p.Solo && p.Replicas == 2 && p.Loss > 0 {
				return true
			}
		}
		return false
	})
	// A span of two replicas earns no round rewards: each member vouches for the other, and
	// the default network asks two members besides the worker (rounds of three earn:
	// TestLateJoinerAndKilledAggregatorTogether); the stages' pipeline work mints nothing.
	for _, n := range nodes {
		list, err := apiClient(n).Proofs(context.Background(), 100, 0)
		if err != nil || len(list.Proofs) != 0 {
			t.Fatalf("proofs of a node of a two-replica span: %+v %v", list, err)
		}
		if minted, _, _ := n.Ledger().Supply(); minted != 0 {
			t.Fatalf("two replicas minted %s", minted)
		}
	}
	// The metrics' training section: the node's steps and pseudo-gradients.
	for _, n := range nodes {
		m, err := apiClient(n).Metrics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		tr := m.Training
		if tr.StepsTotal <= 0 || tr.StepsPerHour <= 0 || tr.GradientsSubmitted < 3 || tr.GradientsAccepted < 3 || tr.GradientsAccepted > tr.GradientsSubmitted {
			t.Fatalf("metrics.training: %+v", tr)
		}
	}
	sent := map[string]int64{}
	for _, n := range nodes {
		st, err := apiClient(n).Status(context.Background())
		if err != nil || st.Training == nil {
			t.Fatalf("status: %+v %v", st, err)
		}
		sent[st.Training.Compression] += st.Training.ExchangeBytesSent
	}
	if sent["fp16"] == 0 || sent["int8"]+sent["none"] == 0 {
		t.Fatalf("pseudo-gradient bytes sent by compression: %v", sent)
	}
}

// excludedFor tells whether n recently left p out of a round numbered at least since, for a
// reason that contains why.
func excludedFor(n *Node, p string, why string, since int64) bool {
	for _, e := range n.recentExclusions() {
		if e.Peer == p && e.Round >= since && strings.Contains(e.Reason, why) {
			return true
		}
	}
	return false
}

// A replica that sends poisoned pseudo-gradients (scaled by 1000, then NaN) is excluded and
// flagged; the honest replicas still agree and the loss still falls.
func TestPoisonedReplicaIsExcluded(t *testing.T) {
	nodes := startTrainingNetwork(t, 5, "0-3", "0-3", "0-3")
	// The aggregator is the lowest peer ID; poison the highest.
	bad := nodes[0]
	for _, n := range nodes {
		if n.ID() > bad.ID() {
			bad = n
		}
	}
	var honest []*Node
	for _, n := range nodes {
		if n != bad {
			honest = append(honest, n)
		}
	}
	var nan atomic.Bool
	bad.tamper = func(p *layers.Params) {
		for _, v := range p.Values {
			for i := range v {
				v[i] *= 1000
			}
		}
		if nan.Load() {
			p.Values[0][0] = float32(math.NaN())
		}
	}
	var first float32
	eventually(t, time.Minute, "a first loss", func() bool { first = honest[0].recentLoss(); return first > 0 })
	eventually(t, 3*time.Minute, "honest replicas to flag the poisoned one", func() bool {
		return excludedFor(honest[0], bad.ID(), "norm", 0)
	})
	nan.Store(true)
	start, _ := rounds(honest[0])
	eventually(t, 3*time.Minute, "two more rounds, the NaN replica flagged", func() bool {
		r, _ := rounds(honest[0])
		return r >= start+2 && excludedFor(honest[0], bad.ID(), "NaN", start)
	})
	eventually(t, time.Minute, "honest replicas to agree", func() bool {
		ra, ha := rounds(honest[0])
		rb, hb := rounds(honest[1])
		return ra == rb && ha == hb
	})
	if last := honest[0].recentLoss(); last >= first {
		t.Fatalf("loss did not fall: %.3f -> %.3f", first, last)
	}
}

// An aggregator that alters the contributions it sends back cannot move the other replica:
// the signatures fail, and the replica does not take the round.
func TestReplicasRecomputeTheAggregate(t *testing.T) {
	nodes := startTrainingNetwork(t, 4, "0-3", "0-3")
	agg, other := nodes[0], nodes[1]
	if other.host.ID() < agg.host.ID() {
		agg, other = other, agg
	}
	agg.replica().SetTamperResult(func(b []byte) []byte {
		b[len(b)/2] ^= 0x40
		return b
	})
	// With fast inner steps either replica may finish rounds alone, and the other may
	// aggregate some rounds itself (with the liar's honest contribution); what must happen is
	// that every result the liar sends is refused.
	eventually(t, 3*time.Minute, "the other replica to refuse the lying aggregator's results", func() bool {
		r, _ := rounds(agg)
		return r >= 2 && other.roundState().Failed > 0
	})
}

// checkpoint/put: a replica takes an offered checkpoint only for its span, for a newer round,
// and with the hash the span's replicas gossip.
func TestCheckpointPutIsTakenOnlyWhenCorroborated(t *testing.T) {
	nodes := startTrainingNetwork(t, 3, "0-3", "0-3")
	a := nodes[0]
	cfg := testConfig(t) // a third replica that does not train: it stays at round 0
	cfg.Model, cfg.Layers = "neuroshard-tiny", "0-3"
	cfg.Bootstrap = a.Multiaddrs()
	c := startNode(t, cfg)
	c.catch.NoPull.Store(true)
	eventually(t, 3*time.Minute, "round 1 on the training replicas", func() bool {
		for _, n := range nodes {
			if r, _ := rounds(n); r < 1 {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	offer := func(mutate func(*p2p.CheckpointPut)) error {
		req := p2p.CheckpointRequest{Model: a.model.Name, First: 0, Last: 3}
		head, data, err := a.catch.Serve(a.host.ID(), req)
		if err != nil {
			t.Fatal(err)
		}
		put := p2p.CheckpointPut{CheckpointRequest: req, CheckpointHead: head}
		if mutate != nil {
			mutate(&put)
		}
		return a.host.PutCheckpoint(ctx, c.host.ID(), put, data)
	}
	code := func(err error) string {
		var re *p2p.RemoteError
		if errors.As(err, &re) {
			return re.Code
		}
		return fmt.Sprint(err)
	}
	if err := offer(func(p *p2p.CheckpointPut) { p.Hash = strings.Repeat("0", 64) }); code(err) != "UNCORROBORATED" {
		t.Fatalf("a checkpoint nobody gossips: %v", err)
	}
	if err := offer(func(p *p2p.CheckpointPut) { p.Last = 2 }); code(err) != "NOT_HELD" {
		t.Fatalf("another span: %v", err)
	}
	if r, _ := rounds(c); r != 0 {
		t.Fatalf("a refused checkpoint moved the replica to round %d", r)
	}
	eventually(t, time.Minute, "the replica to take a corroborated checkpoint", func() bool { return offer(nil) == nil })
	// The replicas that train push their newer rounds to it too: its round and weights are
	// read together once no push lands between the reads.
	var rc int64
	var hc, hs string
	eventually(t, 30*time.Second, "the replica's weights to be its theta_0", func() bool {
		rc, hc = rounds(c)
		hs = c.Stage().Hash()
		r2, h2 := rounds(c)
		return r2 == rc && h2 == hc && hs == hc
	})
	if ra, _ := rounds(a); rc < 1 || rc > ra {
		t.Fatalf("after the put: round %d (sender at %d), weights %s vs theta_0 %s", rc, ra, hs[:12], hc[:12])
	}
	if err := offer(func(p *p2p.CheckpointPut) { p.Round = rc }); code(err) != "NOT_NEWER" && code(err) != "UNCORROBORATED" {
		t.Fatalf("the same round again: %v", err)
	}
}

// A replica set to another outer step than its span's would end rounds with other weights:
// the aggregator refuses its contributions and says why; set back, it rejoins and agrees.
func TestReplicaWithAnotherOuterStepIsRefused(t *testing.T) {
	nodes := startTrainingNetwork(t, 5, "0-3", "0-3")
	agg, other := nodes[0], nodes[1]
	if other.ID() < agg.ID() {
		agg, other = other, agg
	}
	lr, mom := 1.0, 0.0
	patch := func(n *Node, lr, mom float64) {
		t.Helper()
		if _, err := apiClient(n).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{
			OuterLR: &lr, OuterMomentum: &mom}}); err != nil {
			t.Fatal(err)
		}
	}
	patch(other, lr, mom)
	eventually(t, 3*time.Minute, "the aggregator to refuse the other outer step, and say so", func() bool {
		g, err := apiClient(agg).TrainingGlobal(context.Background())
		for _, e := range g.DiLoCo.RecentExclusions {
			if err == nil && e.Peer == other.ID() && strings.Contains(e.Reason, "outer step of lr 1, momentum 0") {
				return true
			}
		}
		return false
	})
	// The refused replica's own status says why its rounds fail.
	eventually(t, time.Minute, "the refused replica's status to say why", func() bool {
		g, err := apiClient(other).TrainingGlobal(context.Background())
		return err == nil && strings.Contains(g.DiLoCo.LastRoundError, "outer step of lr 1, momentum 0")
	})
	patch(other, 0.7, 0.9)
	start, _ := rounds(agg)
	eventually(t, 3*time.Minute, "both replicas to agree two rounds later", func() bool {
		ra, ha := rounds(agg)
		rb, hb := rounds(other)
		return ra >= start+2 && ra == rb && ha == hb
	})
	if excludedFor(agg, other.ID(), "outer step", start+2) {
		t.Fatalf("set back to the span's outer step, the replica was still refused: %+v", agg.recentExclusions())
	}
	eventually(t, time.Minute, "a round that succeeds to clear the failure from the status", func() bool {
		g, err := apiClient(other).TrainingGlobal(context.Background())
		return err == nil && g.DiLoCo.LastRoundError == ""
	})
}

// aggregatorWaiting starts two replicas of the tiny model, of which only the one with the lower
// peer ID trains, and returns it once it is aggregating a round: waiting, until roundTimeout,
// for the other replica's contribution.
func aggregatorWaiting(t *testing.T, roundTimeout time.Duration) *Node {
	t.Helper()
	var nodes []*Node
	for i := 0; i < 2; i++ {
		cfg := testConfig(t)
		cfg.Model, cfg.Layers, cfg.RoundTimeout = "neuroshard-tiny", "0-3", roundTimeout
		if i > 0 {
			cfg.Bootstrap = nodes[0].Multiaddrs()
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	agg := nodes[0]
	if nodes[1].ID() < agg.ID() {
		agg = nodes[1]
	}
	eventually(t, time.Minute, "each node to see the other's span", func() bool {
		return len(agg.replicas(context.Background())) == 2
	})
	on, lr, bs, h := true, 3e-3, 4, 2
	if _, err := apiClient(agg).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{
		Enabled: &on, LearningRate: &lr, BatchSize: &bs, DiLoCoSteps: &h}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the aggregator to wait for the other replica", func() bool {
		return agg.roundState().Collecting
	})
	return agg
}

// Closing a node while it aggregates a round (waiting for a replica that has not sent its
// pseudo-gradient) returns promptly and releases the round: the round loop must not re-enter
// the abandoned round and wait on it forever.
func TestCloseWhileAggregatingReturns(t *testing.T) {
	t.Parallel()
	agg := aggregatorWaiting(t, time.Minute)
	closed := make(chan error, 1)
	go func() { closed <- agg.Close() }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return while the node was aggregating a round")
	}
}

// A catch-up that replaces theta_0 while the node aggregates a round (a checkpoint from a
// replica ahead) makes that round moot: it fails instead of applying an aggregate made against
// the old weights to the new ones.
func TestRoundFailsWhenCaughtUpMeanwhile(t *testing.T) {
	agg := aggregatorWaiting(t, 3*time.Second)
	before, caught, vel := agg.replica().Snapshot()
	caught.Values[0][0] += 0.5
	st := agg.roundState()
	if err := agg.replica().Adopt(before+1, caught, vel, st.StepsAtEnd); err != nil { // what a catch-up does
		t.Fatal(err)
	}
	want, round, failed := caught.Hash(), before+1, st.Failed
	eventually(t, 30*time.Second, "the round to fail", func() bool { return agg.roundState().Failed > failed })
	r, h := rounds(agg)
	if r != round || h != want {
		t.Fatalf("after the moot round: round %d hash %s, want the caught-up round %d hash %s", r, h[:12], round, want[:12])
	}
}

// Two replicas with rounds well under a second (H = 15 on the tiny model: the engine runs
// them in about the time H = 5 took when this test was written) still average each other's
// work in nearly every round: the one still applying a round's result is waited for, not
// treated as behind (which made them run alternate rounds alone, 4 of about 125 shared).
// Rounds of a few inner steps with this engine (H = 5, ~0.1 s) still split the two replicas
// into solo rounds at times: the round protocol's open problem (see the README).
func TestShortRoundsStillAverageBothReplicas(t *testing.T) {
	nodes := startTrainingNetwork(t, 15, "0-3", "0-3")
	eventually(t, 3*time.Minute, "10 rounds", func() bool { r, _ := rounds(nodes[0]); return r >= 10 })
	for _, n := range nodes {
		st := n.roundState()
		ok, shared := st.OK, st.Shared
		if shared < ok*8/10 {
			t.Fatalf("%s: %d of %d rounds averaged both replicas", n.ID(), shared, ok)
		}
	}
}

// recentExclusions lists the replicas rounds left out, newest first.
func (n *Node) recentExclusions() []apitypes.Exclusion {
	if n.replica() == nil {
		return nil
	}
	var out []apitypes.Exclusion
	for _, e := range n.replica().Exclusions() {
		out = append(out, apitypes.Exclusion{Round: e.Round, Peer: e.Peer, Reason: e.Reason})
	}
	return out
}

// Three replicas, the third joining late (it syncs by checkpoint) and then the round's
// aggregator killed in the middle of a round: the joiner agrees with the others from its first
// round of its own, and the survivors' rounds go on, none taking more than twice the adaptive
// deadline beyond the slowest round before the kill, each averaging both survivors, neither
// losing its inner steps; /status and /network report the training.
func TestLateJoinerAndKilledAggregatorTogether(t *testing.T) {
	// Rounds of 30 inner steps: a catch-up (a checkpoint fetched and checked) fits in one.
	nodes := startTrainingNetwork(t, 30, "0-3", "0-3")
	eventually(t, 3*time.Minute, "round 2", func() bool { r, _ := rounds(nodes[0]); return r >= 2 })
	late := startTrainingNode(t, "neuroshard-tiny", 30, nodes[0], "0-3")
	all := append(nodes, late)
	eventually(t, 2*time.Minute, "the late node to catch up", func() bool { r, _ := rounds(late); return r >= 2 })
	first, _ := rounds(late)
	first++                                  // the joiner's first round of its own
	failedBefore := late.roundState().Failed // catch-up attempts before the span's gossip reached it
	eventually(t, 2*time.Minute, "everyone past the joiner's first round", func() bool {
		for _, n := range all {
			if r, _ := rounds(n); r < first+1 {
				return false
			}
		}
		return true
	})
	// Rounds of three replicas are rewarded: each member countersigns the others' part, and a
	// member claims once two have (the default network's quorum). The metrics' rewards
	// section counts what the proofs minted.
	eventually(t, time.Minute, "a round reward on each of the three replicas", func() bool {
		for _, n := range all {
			list, err := apiClient(n).Proofs(context.Background(), 100, 0)
			if err != nil || !slices.ContainsFunc(list.Proofs, func(p apitypes.Proof) bool { return p.Type == "round" && p.Reward > 0 }) {
				return false
			}
		}
		return true
	})
	for _, n := range all {
		m, err := apiClient(n).Metrics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		proofs, err := apiClient(n).Proofs(context.Background(), 1, 0)
		if rw := m.Rewards; err != nil || rw.EarnedTotal != proofs.Stats.TotalReward || rw.EarnedTotal <= 0 || rw.EarnedToday > rw.EarnedTotal {
			t.Fatalf("metrics.rewards %+v, proofs total %v (%v)", rw, proofs.Stats.TotalReward, err)
		}
	}
	// The rounds before the kill, timed.
	var slowest time.Duration
	last, _ := rounds(nodes[0])
	t0 := time.Now()
	for seen := 0; seen < 2; {
		if r, _ := rounds(nodes[0]); r > last {
			slowest, last, t0, seen = max(slowest, time.Since(t0)), r, time.Now(), seen+1
		}
		time.Sleep(5 * time.Millisecond)
	}
	agg := all[0]
	for _, n := range all {
		if n.ID() < agg.ID() {
			agg = n
		}
	}
	var rest []*Node
	for _, n := range all {
		if n != agg {
			rest = append(rest, n)
		}
	}
	// Mid-round: a few inner steps into the round.
	steps := rest[0].innerSteps()
	eventually(t, time.Minute, "inner steps into the round", func() bool { return rest[0].innerSteps() >= steps+2 })
	stepsBefore := []int64{rest[0].innerSteps(), rest[1].innerSteps()}
	agg.Close()
	deadline := rest[0].replica().Deadline()
	bound := slowest + 2*deadline
	last, _ = rounds(rest[0])
	t0 = time.Now()
	for seen := 0; seen < 2; {
		if r, _ := rounds(rest[0]); r > last {
			if took := time.Since(t0); took > bound {
				t.Fatalf("round %d after the kill took %v (slowest before %v, deadline %v)", r, took, slowest, deadline)
			}
			last, t0, seen = r, time.Now(), seen+1
		}
		if time.Since(t0) > bound {
			t.Fatalf("no round within %v after round %d (slowest before %v, deadline %v)", bound, last, slowest, deadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
	eventually(t, time.Minute, "the survivors to agree, having averaged both", func() bool {
		ra, ha := rounds(rest[0])
		rb, hb := rounds(rest[1])
		return ra == rb && ha == hb && len(rest[0].roundState().LastUsed) == 2
	})
	for i, n := range rest {
		if n.innerSteps() < stepsBefore[i] {
			t.Fatalf("%s: inner steps went from %d to %d", n.ID(), stepsBefore[i], n.innerSteps())
		}
	}
	now, _ := rounds(rest[0])
	st, err := apiClient(rest[0]).Status(context.Background())
	if err != nil || st.Training == nil || st.Training.Epoch < now || st.Training.Step == 0 || st.Training.Loss <= 0 {
		t.Fatalf("status training: %+v %v", st.Training, err)
	}
	nw, err := apiClient(rest[1]).Network(context.Background())
	if err != nil || nw.Training == nil || nw.Training.Epoch < now {
		t.Fatalf("network training: %+v %v", nw.Training, err)
	}
	// The joiner agreed from its first round: every round's result is checked by every
	// replica, and one that disagreed would have resynced and counted a failed round.
	if f := late.roundState().Failed; late != agg && f > failedBefore {
		t.Fatalf("the joiner failed %d rounds after it caught up", f-failedBefore)
	}
}

// A replica of a downstream span that joins while the drivers train takes its share of the
// training steps: the drivers re-plan their routes as the view changes, so the span's two
// replicas each take inner steps and share their rounds (before, every driver kept the route
// it had planned without it, and the joiner never took a step).
func TestDownstreamReplicaJoiningLateIsDriven(t *testing.T) {
	nodes := startTrainingNetwork(t, 5, "0-1", "0-1", "2-3")
	eventually(t, 2*time.Minute, "a round of span 2-3", func() bool { r, _ := rounds(nodes[2]); return r >= 1 })
	late := startTrainingNode(t, "neuroshard-tiny", 5, nodes[0], "2-3")
	eventuallyShowing(t, 2*time.Minute, "the late replica of 2-3 to take inner steps and share rounds", func() (bool, any) {
		st := late.roundState()
		return late.innerSteps() >= 10 && st.Shared >= 2, st
	})
}
