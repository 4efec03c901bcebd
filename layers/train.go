package layers

import (
	"fmt"
	"math"
)

// LocalPipeline is a chain of stages in one process that covers the whole model: the
// reference the distributed pipeline must match, and the trainer of a node that holds every
// layer.
type LocalPipeline []*Stage

// Forward runs token IDs [B,T] through every stage and returns the logits.
func (lp LocalPipeline) Forward(tokens *Tensor) (*Tensor, error) {
	x := tokens
	for _, st := range lp {
		out, err := st.Forward(x)
		if err != nil {
			return nil, err
		}
		x = out
	}
	return x, nil
}

// Gradients runs a training batch forward and back through the stages and returns each
// stage's parameter gradients and the loss.
func (lp LocalPipeline) Gradients(tokens, targets *Tensor) ([]*Params, float32, error) {
	inputs := []*Tensor{tokens}
	for _, st := range lp[:len(lp)-1] {
		out, err := st.Forward(inputs[len(inputs)-1])
		if err != nil {
			return nil, 0, err
		}
		inputs = append(inputs, out)
	}
	grads := make([]*Params, len(lp))
	var gradOut *Tensor
	var loss float32
	for i := len(lp) - 1; i >= 0; i-- {
		var g *Gradients
		var err error
		if i == len(lp)-1 {
			g, err = lp[i].BackwardLoss(inputs[i], targets)
		} else {
			g, err = lp[i].Backward(inputs[i], gradOut)
		}
		if err != nil {
			return nil, 0, err
		}
		if i == len(lp)-1 {
			loss = g.Loss
		}
		grads[i], gradOut = g.Params, g.Input
	}
	return grads, loss, nil
}

// TrainStep takes one AdamW step on every stage (opts[i] for stage i) and returns the loss.
func (lp LocalPipeline) TrainStep(opts []*AdamW, tokens, targets *Tensor) (float32, error) {
	if len(opts) != len(lp) {
		return 0, fmt.Errorf("layers: %d optimizers for %d stages", len(opts), len(lp))
	}
	grads, loss, err := lp.Gradients(tokens, targets)
	if err != nil {
		return 0, err
	}
	for i, st := range lp {
		if err := st.Step(opts[i], grads[i]); err != nil {
			return 0, err
		}
	}
	return loss, nil
}

// Loss is the mean cross-entropy of the model on batches (forward only).
func (lp LocalPipeline) Loss(batches [][2]*Tensor) (float64, error) {
	sum, n := 0.0, 0
	for _, b := range batches {
		logits, err := lp.Forward(b[0])
		if err != nil {
			return 0, err
		}
		l, k := CrossEntropy(logits, b[1])
		sum += l * float64(k)
		n += k
	}
	if n == 0 {
		return 0, fmt.Errorf("layers: no validation batches")
	}
	return sum / float64(n), nil
}

// CrossEntropy is the mean of -log softmax(logits)[target] over positions, in float64, and
// the number of positions.
func CrossEntropy(logits, targets *Tensor) (float64, int) {
	v := logits.Dims[len(logits.Dims)-1]
	n := len(targets.I32)
	total := 0.0
	for i := 0; i < n; i++ {
		row := logits.F32[i*v : (i+1)*v]
		m := float64(row[0])
		for _, x := range row {
			m = math.Max(m, float64(x))
		}
		s := 0.0
		for _, x := range row {
			s += math.Exp(float64(x) - m)
		}
		total += m + math.Log(s) - float64(row[targets.I32[i]])
	}
	return total / float64(n), n
}
