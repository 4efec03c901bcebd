package diloco

import (
	"errors"
	"fmt"
	"slices"

	"github.com/neuroshard/neuroshard/layers"
)

// ErrRejected is returned for a contribution that cannot be aggregated.
var ErrRejected = errors.New("diloco: contribution rejected")

// PseudoGradient is theta0 - local: the direction the inner steps moved, negated.
func PseudoGradient(theta0, local *layers.Params) (*layers.Params, error) {
	if err := local.Check(theta0.Specs); err != nil {
		return nil, err
	}
	out := &layers.Params{Specs: slices.Clone(theta0.Specs), Values: make([][]float32, len(theta0.Values))}
	for i, t0 := range theta0.Values {
		d := make([]float32, len(t0))
		for j := range t0 {
			d[j] = t0[j] - local.Values[i][j]
		}
		out.Values[i] = d
	}
	return out, nil
}

// Rebase moves local work onto a new theta_0: theta0 + (now - snap), where snap are the
// weights a round's pseudo-gradient was made from and now the weights after the inner steps
// taken since. The three must have one shape (a replica's own weights). Where no work was
// done the result is theta0 bit for bit.
func Rebase(theta0, snap, now *layers.Params) *layers.Params {
	out := theta0.Clone()
	for i, v := range out.Values {
		s, n := snap.Values[i], now.Values[i]
		for j := range v {
			if d := n[j] - s[j]; d != 0 { // no work leaves theta_0's bits as they are (-0 + 0 is +0)
				v[j] += d
			}
		}
	}
	return out
}

// Outer is the outer optimizer: SGD with Nesterov momentum applied to theta0 (not to the local
// weights) with the aggregated pseudo-gradient. Defaults from the paper: lr 0.7, momentum 0.9.
type Outer struct {
	LR, Momentum float32
	velocity     [][]float32
}

// The paper's outer step: lr 0.7 and Nesterov momentum 0.9, tuned for rounds of hundreds of
// inner steps.
const (
	DefaultOuterLR       = 0.7
	DefaultOuterMomentum = 0.9
)

// NewOuter returns the outer optimizer.
func NewOuter(lr, momentum float32) *Outer { return &Outer{LR: lr, Momentum: momentum} }

// Velocity returns a copy of the momentum buffers (for checkpoints and for a joining replica),
// or nil before the first step.
func (o *Outer) Velocity() [][]float32 {
	if o.velocity == nil {
		return nil
	}
	out := make([][]float32, len(o.velocity))
	for i, v := range o.velocity {
		out[i] = slices.Clone(v)
	}
	return out
}

// SetVelocity restores momentum buffers (nil or empty: none yet).
func (o *Outer) SetVelocity(v [][]float32) {
	if len(v) == 0 {
		v = nil
	}
	o.velocity = v
}

// Step updates theta0 in place: v = mu*v + g; theta0 -= lr * (g + mu*v).
func (o *Outer) Step(theta0, g *layers.Params) error {
	if err := g.Check(theta0.Specs); err != nil {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	if o.velocity == nil {
		o.velocity = make([][]float32, len(theta0.Values))
		for i, t := range theta0.Values {
			o.velocity[i] = make([]float32, len(t))
		}
	}
	if len(o.velocity) != len(theta0.Values) {
		return fmt.Errorf("diloco: momentum for %d tensors, weights have %d", len(o.velocity), len(theta0.Values))
	}
	mu, lr := o.Momentum, o.LR
	for i, t := range theta0.Values {
		v, gi := o.velocity[i], g.Values[i]
		for j := range t {
			// Products are rounded to float32 explicitly: no platform may fuse them.
			v[j] = float32(mu*v[j]) + gi[j]
			t[j] -= float32(lr * (gi[j] + float32(mu*v[j])))
		}
	}
	return nil
}
