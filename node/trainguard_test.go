package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/neuroshard/neuroshard/diloco/replicanet"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
	"github.com/neuroshard/neuroshard/p2p"
)

// A node never trains on what a peer sends it: the first stage takes no training input from
// peers at all, and a downstream stage takes training steps only from a driver (a holder of
// layer 0).
func TestTrainingSessionsOnlyFromDrivers(t *testing.T) {
	nodes := startTrainingNetwork(t, 1000, "0-1", "0-1", "2-3")
	driver, first, down := nodes[0], nodes[1], nodes[2]
	cfg := testConfig(t)
	cfg.Model, cfg.Layers, cfg.Bootstrap = "neuroshard-tiny", "2-3", driver.Multiaddrs()
	stranger := startNode(t, cfg) // holds layers, but not layer 0
	eventually(t, 15*time.Second, "coverage of every node", func() bool {
		h := down.pipe.Holdings(context.Background())
		return len(h[driver.host.ID()]) > 0 && len(h[stranger.host.ID()]) > 0
	})
	ctx := context.Background()
	refused := func(c *p2p.TrainClient, err error) bool {
		if err == nil {
			c.Close()
			return false
		}
		var re *p2p.RemoteError
		return errors.As(err, &re) && re.Code == "FORBIDDEN"
	}
	tokens := p2p.ForwardOpen{Model: "neuroshard-tiny", First: 0, Last: 1, Batch: 1}
	if c, err := stranger.host.OpenTrain(ctx, first.host.ID(), tokens); !refused(c, err) {
		t.Fatalf("a peer's tokens into the first stage: %v, want FORBIDDEN", err)
	}
	if c, err := driver.host.OpenTrain(ctx, first.host.ID(), tokens); !refused(c, err) {
		t.Fatalf("even a driver's tokens into another first stage: %v, want FORBIDDEN", err)
	}
	acts := p2p.ForwardOpen{Model: "neuroshard-tiny", First: 2, Last: 3, Batch: 1}
	if c, err := stranger.host.OpenTrain(ctx, down.host.ID(), acts); !refused(c, err) {
		t.Fatalf("a non-driver's activations: %v, want FORBIDDEN", err)
	}
	c, err := driver.host.OpenTrain(ctx, down.host.ID(), acts)
	if err != nil {
		t.Fatalf("the driver's training session: %v", err)
	}
	c.Close()
}

// A report, however far ahead, moves a replica only when a majority of the span's other
// holders make it with one hash: a peer that holds nothing (or a lone liar among several
// replicas) cannot make a replica drop its rounds for a catch-up; training goes on.
func TestCatchUpNeedsAQuorumOfHolders(t *testing.T) {
	nodes := startTrainingNetwork(t, 1000, "0-3", "0-3")
	a, b := nodes[0], nodes[1]
	eventually(t, 15*time.Second, "each replica sees the other hold the span", func() bool {
		return len(a.replicas(context.Background())) == 2
	})
	mine := a.roundState().Round
	claim := func(id peer.ID, round int64, hash string) {
		a.reports.Put(id.String(), TrainingReport{Model: a.model.Name, First: 0, Last: 3, Round: round, Hash: hash}, time.Now())
	}
	fake := strings.Repeat("ab", 32)
	claim(randomPeer(t), mine+1000, fake) // a valid identity that holds nothing
	if p, ok := a.catch.NewerReplica(); ok {
		t.Fatalf("a non-holder's report made %s the source of a catch-up", p)
	}
	claim(b.host.ID(), mine+1, fake) // the only other holder: a quorum of one
	if p, ok := a.catch.NewerReplica(); !ok || p != b.host.ID() {
		t.Fatalf("the other holder's newer round: %s %v", p, ok)
	}
	// A checkpoint whose hash the majority's report for its round contradicts is refused, and
	// the next try from that peer waits.
	claim(b.host.ID(), b.roundState().Round, fake)
	if a.catch.From(b.host.ID()) {
		t.Fatal("took a checkpoint whose hash the gossip contradicts")
	}
	claim(b.host.ID(), mine+1, fake)
	if _, ok := a.catch.NewerReplica(); ok {
		t.Fatal("no back-off after a failed catch-up")
	}
	before := a.innerSteps()
	eventually(t, time.Minute, "inner steps go on", func() bool { return a.innerSteps() > before+2 })
}

// Reports from peers that do not hold the span they report on move no figure: 100 sybils
// claiming the span's newest round with another hash and absurd counters leave the agreement
// at 1 and the totals as the real replicas make them; a report with a time far from this
// node's clock is refused by the topic's validator.
func TestSybilReportsMoveNoFigure(t *testing.T) {
	nodes := startTrainingNetwork(t, 10, "0-3", "0-3") // a shared round makes both members
	a := nodes[0]
	eventually(t, 30*time.Second, "both replicas' reports", func() bool {
		for _, n := range nodes { // publish now rather than at the next 10 s tick
			if n.innerSteps() > 0 {
				n.publishTraining()
			}
		}
		g := a.api.TrainingGlobal(context.Background())
		return g.TotalNodesTraining == 2
	})
	before := a.api.TrainingGlobal(context.Background())
	round := a.roundState().Round
	for range 100 {
		a.reports.Put(randomPeer(t).String(), TrainingReport{Model: a.model.Name, First: 0, Last: 3,
			Round: round, Hash: strings.Repeat("cd", 32), Loss: 0.01, Steps: 1 << 50, Tokens: 1 << 50, Time: time.Now().Unix()}, time.Now())
	}
	g := a.api.TrainingGlobal(context.Background())
	if g.TotalNodesTraining != 2 || g.HashAgreementRate != 1 || g.GlobalMinLoss < 0.5 || g.GlobalSteps < 0 || g.GlobalSteps > before.GlobalSteps*10+1000 {
		t.Fatalf("sybils moved the figures: %+v (before %+v)", g, before)
	}
	r := a.myReport()
	r.Time = time.Now().Add(-time.Hour).Unix()
	data, _ := json.Marshal(r)
	if a.gossip.Valid(a.host.ID(), data) {
		t.Fatal("a report an hour old passed the validator")
	}
}

// A replica alone takes its rounds solo: they are reported as solo rounds, not successful
// syncs, and training is not verified (one replica proves nothing), with that reason.
func TestSoloRoundsAreNotSyncsAndVerifyNothing(t *testing.T) {
	n := startTrainingNetwork(t, 3, "0-3")[0]
	eventually(t, time.Minute, "two rounds", func() bool { r, _ := rounds(n); return r >= 2 })
	g := n.api.TrainingGlobal(context.Background())
	if g.SuccessfulSyncs != 0 || g.SoloRounds < 2 || g.TrainingVerified || g.AgreeingReplicas != 1 {
		t.Fatalf("a lone replica: %+v", g)
	}
	v := n.api.TrainingVerify(context.Background())
	if v.IsWorking || !strings.Contains(v.Reason, "alone") {
		t.Fatalf("verify: %+v", v)
	}
}

// randomPeer is a fresh, valid peer identity.
func randomPeer(t *testing.T) peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A span's checkpoint goes only to holders of the span, and to each at a bounded rate: a
// request of a few bytes is no amplifier for anyone else.
func TestCheckpointsGoToHoldersOnlyAtARate(t *testing.T) {
	nodes := startTrainingNetwork(t, 1000, "0-3", "0-3")
	a, b := nodes[0], nodes[1]
	cfg := testConfig(t)
	cfg.Model, cfg.Layers, cfg.Bootstrap = "neuroshard-tiny", "2-3", a.Multiaddrs()
	stranger := startNode(t, cfg)
	ctx := context.Background()
	eventually(t, 15*time.Second, "a sees both other nodes' spans", func() bool {
		h := a.pipe.Holdings(ctx)
		return len(h[b.host.ID()]) > 0 && len(h[stranger.host.ID()]) > 0
	})
	req := p2p.CheckpointRequest{Model: "neuroshard-tiny", First: 0, Last: 3}
	code := func(err error) string {
		var re *p2p.RemoteError
		if errors.As(err, &re) {
			return re.Code
		}
		return fmt.Sprint(err)
	}
	if _, _, err := stranger.host.GetCheckpoint(ctx, a.host.ID(), req); code(err) != "FORBIDDEN" {
		t.Fatalf("a non-holder's checkpoint request: %v, want FORBIDDEN", err)
	}
	// A record shown with the request stands for provider records still on their way, when it
	// is the requester's own, names the span, and is fresh: its record naming another span, or
	// another holder's record, does not.
	shown := func(r p2p.PeerRecord) p2p.CheckpointRequest { q := req; q.Record = r.Encode(); return q }
	if _, _, err := stranger.host.GetCheckpoint(ctx, a.host.ID(), shown(stranger.host.Record())); code(err) != "FORBIDDEN" {
		t.Fatalf("a record naming span 2-3 for 0-3: %v, want FORBIDDEN", err)
	}
	if _, _, err := stranger.host.GetCheckpoint(ctx, a.host.ID(), shown(b.host.Record())); code(err) != "FORBIDDEN" {
		t.Fatalf("another holder's record: %v, want FORBIDDEN", err)
	}
	own := stranger.host.Record()
	own.First, own.Last = 0, 3
	if err := stranger.host.SetRecord(own); err != nil {
		t.Fatal(err)
	}
	if _, data, err := stranger.host.GetCheckpoint(ctx, a.host.ID(), shown(stranger.host.Record())); err != nil || len(data) == 0 {
		t.Fatalf("the requester's own fresh record naming the span: %v", err)
	}
	// The coverage view is a DHT lookup: a holder may be missing from one for a moment.
	eventually(t, 20*time.Second, "a holder's request served", func() bool {
		_, data, err := b.host.GetCheckpoint(ctx, a.host.ID(), req)
		return err == nil && len(data) > 0
	})
	busy := 0
	for i := range replicanet.ServeBurst + 2 {
		_, data, err := b.host.GetCheckpoint(ctx, a.host.ID(), req)
		switch {
		case err == nil && len(data) > 0:
		case code(err) == "BUSY":
			busy++
		case code(err) == "FORBIDDEN": // a view that lost the holder for a moment
		default:
			t.Fatalf("request %d of a holder: %v", i, err)
		}
	}
	if busy == 0 {
		t.Fatalf("%d checkpoint requests at once were all served", replicanet.ServeBurst+2)
	}
}

// A holder of the span that does not train (it announces 0-3 and serves it) gossips a signed
// report of another hash at the newest round: no round used a pseudo-gradient of its, so it is
// no member, and the replicas' figures do not move (counted as a holder, it made agreement
// 2 of 3). The holder itself, outside the rounds and with no audit of the replicas, counts
// none of their reports: holding the span vouches for nobody.
func TestReportsCountOnlyFromRoundMembers(t *testing.T) {
	nodes := startTrainingNetwork(t, 5, "0-3", "0-3")
	a := nodes[0]
	cfg := testConfig(t)
	cfg.Model, cfg.Layers, cfg.Bootstrap = "neuroshard-tiny", "0-3", a.Multiaddrs()
	m := startNode(t, cfg)
	eventually(t, time.Minute, "a shared round and both replicas' reports", func() bool {
		for _, n := range nodes {
			if n.innerSteps() > 0 {
				n.publishTraining()
			}
		}
		g := a.api.TrainingGlobal(context.Background())
		return a.roundState().Shared > 0 && g.TotalNodesTraining == 2
	})
	for _, n := range nodes { // the other may still be applying the shared round
		eventually(t, 30*time.Second, "both replicas members at "+n.ID(), func() bool {
			got := n.replica().Members()
			return len(got) == 2 && slices.Contains(got, nodes[0].ID()) && slices.Contains(got, nodes[1].ID())
		})
	}
	eventually(t, 30*time.Second, "the third node in a's coverage view as a holder of 0-3", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return slices.Contains(a.pipe.Holdings(ctx)[m.host.ID()], layers.Span{First: 0, Last: 3})
	})
	lie := a.myReport()
	lie.Hash, lie.Members = strings.Repeat("cd", 32), []string{m.ID()}
	data, _ := json.Marshal(lie)
	eventually(t, 30*time.Second, "the lying report at a", func() bool {
		if err := m.gossip.Topic().Publish(context.Background(), data); err != nil {
			t.Fatal(err)
		}
		r, ok := a.reports.Latest(m.ID())
		return ok && r.Hash == lie.Hash
	})
	if g := a.api.TrainingGlobal(context.Background()); g.TotalNodesTraining != 2 || g.HashAgreementRate != 1 {
		t.Fatalf("a holder outside the rounds moved the figures: %d training, agreement %v", g.TotalNodesTraining, g.HashAgreementRate)
	}
	eventually(t, 30*time.Second, "the replicas' reports at the third node", func() bool {
		_, okA := m.reports.Latest(nodes[0].ID())
		_, okB := m.reports.Latest(nodes[1].ID())
		return okA && okB
	})
	v := m.Training()
	for _, n := range nodes {
		if seen, ok := v.Reports[n.host.ID()]; !ok || seen.Fresh {
			t.Fatalf("the third node, which audited no replica, has %s's report %v, counted %v", n.ID(), ok, seen.Fresh)
		}
	}
}

// A replica that does not train holds nobody to its idle learning rate and aggregates no
// round: as the first aggregator of a round it refused every trainer's contribution (the
// span's rounds stalled for good), and, once it took them, held each for its begin deadline.
func TestIdleReplicaChecksNoInnerLearningRate(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t)) // training off
	if s := n.roundSettings(); s.InnerLR != 0 || !s.Idle {
		t.Fatalf("an idle replica's round settings: %+v (want no learning rate checked, idle)", s)
	}
	on := true
	if _, err := apiClient(n).PatchConfig(context.Background(), apitypes.ConfigPatch{Training: &apitypes.TrainingPatch{Enabled: &on}}); err != nil {
		t.Fatal(err)
	}
	if s, want := n.roundSettings(), float32(n.settings.Get().Training.LearningRate); s.InnerLR != want || want == 0 || s.Idle {
		t.Fatalf("a training replica's round settings: %+v, want learning rate %g checked, not idle", s, want)
	}
}
