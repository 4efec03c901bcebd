package node

import (
	"context"
	"testing"
	"time"

	"github.com/neuroshard/neuroshard/httpapi"
)

func meanLoss(ls []float32) float64 {
	s := 0.0
	for _, l := range ls {
		s += float64(l)
	}
	return s / float64(len(ls))
}

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
