package node

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/httpapi"
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
		if _, err := apiClient(n).PatchConfig(context.Background(), httpapi.ConfigPatch{Training: &httpapi.TrainingPatch{LearningRate: &lr, BatchSize: &bs}}); err != nil {
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
	on := true
	var nodes []*Node
	for i, span := range spans {
		cfg := testConfig(t)
		cfg.Model, cfg.Layers, cfg.Train, cfg.RoundTimeout = "neuroshard-tiny", span, &on, 20*time.Second
		if i > 0 {
			cfg.Bootstrap = nodes[0].Multiaddrs()
		}
		n := startNode(t, cfg)
		lr, bs := 3e-3, 4
		if _, err := apiClient(n).PatchConfig(context.Background(), httpapi.ConfigPatch{Training: &httpapi.TrainingPatch{
			LearningRate: &lr, BatchSize: &bs, DiLoCoSteps: &h}}); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	return nodes
}

func rounds(n *Node) (int64, string) {
	n.sync.mu.Lock()
	defer n.sync.mu.Unlock()
	return n.sync.round, n.sync.theta0.Hash()
}

// Four nodes, two spans with two replicas each: after every round the replicas of a span hold
// bit-identical weights, the loss falls, and /api/training/verify says training works.
func TestDiLoCoReplicasAgreeAndVerify(t *testing.T) {
	nodes := startTrainingNetwork(t, 6, "0-1", "0-1", "2-3", "2-3")
	for r := int64(1); r <= 3; r++ {
		eventually(t, 4*time.Minute, fmt.Sprintf("round %d on every node", r), func() bool {
			for _, n := range nodes {
				if got, _ := rounds(n); got < r {
					return false
				}
			}
			return true
		})
	}
	// Compare the replicas of each span at a common round.
	for _, pair := range [][2]*Node{{nodes[0], nodes[1]}, {nodes[2], nodes[3]}} {
		eventually(t, 2*time.Minute, "replicas at the same round with the same weights", func() bool {
			ra, ha := rounds(pair[0])
			rb, hb := rounds(pair[1])
			return ra == rb && ha == hb
		})
	}
	var v httpapi.TrainingVerify
	eventually(t, 3*time.Minute, "/api/training/verify to say training works", func() bool {
		err := apiClient(nodes[0]).Do(context.Background(), http.MethodGet, "/api/training/verify", nil, &v)
		return err == nil && v.IsWorking
	})
	g, err := apiClient(nodes[2]).TrainingGlobal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g.HashAgreementRate != 1 || g.TotalNodesTraining != 4 || g.SuccessfulSyncs < 3 || g.LossTrend != "improving" {
		t.Fatalf("training global: %+v", g)
	}
}
