package layers

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// AdamW is the inner optimizer, in plain Go over float32 slices in a fixed order, so every peer
// that applies the same gradients gets bit-identical weights whatever backend built the
// gradients. Weight decay applies to the matrices only (not to norm gains nor the embedding),
// unlike gomlx's Adam, which decays every variable.
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64

	step int
	m, v [][]float32
}

// NewAdamW returns AdamW with the usual transformer settings (betas 0.9/0.95, eps 1e-8, weight
// decay 0.1) and the given learning rate.
func NewAdamW(lr float64) *AdamW {
	return &AdamW{LR: lr, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
}

// Steps is the number of steps taken.
func (o *AdamW) Steps() int { return o.step }

func decays(name string) bool {
	return !strings.HasSuffix(name, "norm") && name != "embed.table"
}

// Step updates params in place from grads (same specs). It refuses non-finite gradients,
// leaving params untouched.
func (o *AdamW) Step(params, grads *Params) error {
	if err := grads.Check(params.Specs); err != nil {
		return fmt.Errorf("adamw: gradients: %w", err)
	}
	if o.m == nil {
		o.m, o.v = make([][]float32, len(params.Values)), make([][]float32, len(params.Values))
		for i, p := range params.Values {
			o.m[i], o.v[i] = make([]float32, len(p)), make([]float32, len(p))
		}
	}
	if len(o.m) != len(params.Values) {
		return fmt.Errorf("adamw: optimizer state for %d tensors, got %d", len(o.m), len(params.Values))
	}
	o.step++
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	c1 := float32(1 - math.Pow(o.Beta1, float64(o.step)))
	c2 := float32(1 - math.Pow(o.Beta2, float64(o.step)))
	lr, eps, wd := float32(o.LR), float32(o.Eps), float32(o.WeightDecay)
	for i, p := range params.Values {
		g, m, v := grads.Values[i], o.m[i], o.v[i]
		decay := decays(params.Specs[i].Name)
		for j := range p {
			// Each product is rounded to float32 explicitly so no platform fuses it into an FMA.
			m[j] = float32(b1*m[j]) + float32((1-b1)*g[j])
			v[j] = float32(b2*v[j]) + float32(float32((1-b2)*g[j])*g[j])
			mh, vh := m[j]/c1, v[j]/c2
			upd := mh / (float32(math.Sqrt(float64(vh))) + eps)
			if decay {
				upd += float32(wd * p[j])
			}
			p[j] -= float32(lr * upd)
		}
	}
	return nil
}

// Step applies an optimizer step to the stage's parameters from gradients it computed or
// received.
// The update is in place (AdamW checks every gradient before it changes anything), and the
// backend's copies of the parameters are overwritten rather than made anew: a step of the
// base model would otherwise allocate and copy its 200 MB of weights twice.
func (s *Stage) Step(opt *AdamW, grads *Params) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := opt.Step(s.params, grads); err != nil {
		return err
	}
	s.hash = ""
	s.known.Store(nil)
	for i, t := range s.tensors {
		if err := tensors.MutableFlatData(t, func(flat []float32) { copy(flat, s.params.Values[i]) }); err != nil {
			s.tensors = nil // made anew from the parameters on the next use
			break
		}
	}
	return nil
}
