package node

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/neuroshard/neuroshard/layers"
)

// checkpointPath is where the node keeps the weights of its span.
func (n *Node) checkpointPath(span layers.Span) string {
	return filepath.Join(n.cfg.DataDir, "checkpoints", fmt.Sprintf("%s-layers-%d-%d.bin", n.model.Name, span.First, span.Last))
}

// loadStage builds the stage for the node's span from its checkpoint, or, when there is none,
// from the deterministic initialisation every peer computes alike (then saves it, so a
// restart reloads the same weights). A checkpoint that fails its hash is an error, not a
// silent re-initialisation: it may hold training the operator wants back.
func (n *Node) loadStage(span layers.Span) (*layers.Stage, error) {
	path := n.checkpointPath(span)
	meta, params, err := layers.LoadCheckpoint(path, n.model, span)
	switch {
	case err == nil:
		n.loadedRound = meta.Round
		logger().Info("layers loaded from checkpoint", "span", span.String(), "hash", meta.Hash[:12], "step", meta.Step, "round", meta.Round)
	case errors.Is(err, fs.ErrNotExist):
		params = n.model.InitParams(span, n.cfg.ModelSeed)
		if err := layers.SaveCheckpoint(path, layers.CheckpointMeta{Model: n.model.Name, Span: span}, params); err != nil {
			return nil, fmt.Errorf("node: save initial checkpoint: %w", err)
		}
		logger().Info("layers initialised", "span", span.String(), "seed", n.cfg.ModelSeed, "hash", params.Hash()[:12])
	default:
		return nil, fmt.Errorf("node: checkpoint %s: %w (move it away to start from the initial weights)", path, err)
	}
	return layers.NewStage(n.model, span, params, layers.InBackground(n.servingNow, n.trainYieldLimit()))
}

// Stage is the model stage the node holds (nil before Start).
func (n *Node) Stage() *layers.Stage {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stage
}
