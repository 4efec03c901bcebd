package layers

import (
	"errors"
	"fmt"
	"slices"
)

// ErrBadInput is returned for a tensor of the wrong dtype or shape, a token outside the
// vocabulary, or a NaN or Inf value. The stage is left unchanged.
var ErrBadInput = errors.New("layers: bad input")

// Tensor is a dense row-major tensor of float32 (F32) or int32 (I32) values: activations and
// gradients are float32, token IDs int32.
type Tensor struct {
	Dims []int
	F32  []float32
	I32  []int32
}

// NewF32 wraps float32 data.
func NewF32(data []float32, dims ...int) *Tensor { return &Tensor{Dims: slices.Clone(dims), F32: data} }

// NewI32 wraps int32 data.
func NewI32(data []int32, dims ...int) *Tensor { return &Tensor{Dims: slices.Clone(dims), I32: data} }

// Size is the number of elements the dims describe.
func (t *Tensor) Size() int {
	n := 1
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// checkF32 verifies t is a finite float32 tensor with the given dims.
func checkF32(what string, t *Tensor, dims ...int) error {
	if t == nil || t.F32 == nil || t.I32 != nil {
		return fmt.Errorf("%w: %s must be float32", ErrBadInput, what)
	}
	if !slices.Equal(t.Dims, dims) {
		return fmt.Errorf("%w: %s has shape %v, want %v", ErrBadInput, what, t.Dims, dims)
	}
	if len(t.F32) != t.Size() {
		return fmt.Errorf("%w: %s has %d values for shape %v", ErrBadInput, what, len(t.F32), t.Dims)
	}
	if i := firstNonFinite(t.F32); i >= 0 {
		return fmt.Errorf("%w: %s[%d] is %v", ErrBadInput, what, i, t.F32[i])
	}
	return nil
}

// checkTokens verifies t is an int32 [B,T] tensor of token IDs below vocab with 1 <= T <= ctx.
func checkTokens(what string, t *Tensor, vocab, ctx int) error {
	if t == nil || t.I32 == nil || t.F32 != nil {
		return fmt.Errorf("%w: %s must be int32 token IDs", ErrBadInput, what)
	}
	if len(t.Dims) != 2 || t.Dims[0] < 1 || t.Dims[1] < 1 {
		return fmt.Errorf("%w: %s has shape %v, want [batch, seq]", ErrBadInput, what, t.Dims)
	}
	if t.Dims[1] > ctx {
		return fmt.Errorf("%w: %s is %d tokens long, the context is %d", ErrBadInput, what, t.Dims[1], ctx)
	}
	if len(t.I32) != t.Size() {
		return fmt.Errorf("%w: %s has %d values for shape %v", ErrBadInput, what, len(t.I32), t.Dims)
	}
	for i, id := range t.I32 {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("%w: %s[%d] = %d is outside the vocabulary (0-%d)", ErrBadInput, what, i, id, vocab-1)
		}
	}
	return nil
}
