package cpu

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// dotAxes is a DotGeneral reduced to batched matrix products: each operand seen as
// [batch, rows, cols] after a permutation of its axes (nil when none is needed), and whether
// its matrices are read transposed.
type dotAxes struct {
	batch, m, n, k int
	lhsPerm        []int // to [batch..., free..., contract...] (or [batch, contract, free] when lhsT)
	rhsPerm        []int // to [batch..., contract..., free...] (or [batch, free, contract] when rhsT)
	lhsT, rhsT     bool
	lhsDims        []int // dims after the permutation
	rhsDims        []int
}

// planDot checks a DotGeneral and chooses how to run it. The output is [batch..., lhs free...,
// rhs free...] as gomlx defines it.
func planDot(l shapes.Shape, lc, lb []int, r shapes.Shape, rc, rb []int) (*dotAxes, shapes.Shape, error) {
	bad := func(f string, a ...any) (*dotAxes, shapes.Shape, error) {
		return nil, shapes.Invalid(), fmt.Errorf("cpu backend: DotGeneral "+f, a...)
	}
	if l.DType != dtypes.Float32 || r.DType != dtypes.Float32 {
		return bad("of %s and %s: float32 only", l.DType, r.DType)
	}
	if len(lc) != len(rc) || len(lb) != len(rb) {
		return bad("with %d/%d contracting and %d/%d batch axes", len(lc), len(rc), len(lb), len(rb))
	}
	seen := func(rank int, groups ...[]int) ([]int, error) {
		used := make([]bool, rank)
		for _, g := range groups {
			for _, a := range g {
				if a < 0 || a >= rank || used[a] {
					return nil, fmt.Errorf("axis %d repeated or out of rank %d", a, rank)
				}
				used[a] = true
			}
		}
		var free []int
		for a, u := range used {
			if !u {
				free = append(free, a)
			}
		}
		return free, nil
	}
	lf, err := seen(l.Rank(), lc, lb)
	if err != nil {
		return bad("lhs: %v", err)
	}
	rf, err := seen(r.Rank(), rc, rb)
	if err != nil {
		return bad("rhs: %v", err)
	}
	d := &dotAxes{batch: 1, m: 1, n: 1, k: 1}
	var out []int
	for i := range lb {
		if l.Dimensions[lb[i]] != r.Dimensions[rb[i]] {
			return bad("batch axes %d and %d differ (%d, %d)", lb[i], rb[i], l.Dimensions[lb[i]], r.Dimensions[rb[i]])
		}
		d.batch *= l.Dimensions[lb[i]]
		out = append(out, l.Dimensions[lb[i]])
	}
	for i := range lc {
		if l.Dimensions[lc[i]] != r.Dimensions[rc[i]] {
			return bad("contracting axes %d and %d differ (%d, %d)", lc[i], rc[i], l.Dimensions[lc[i]], r.Dimensions[rc[i]])
		}
		d.k *= l.Dimensions[lc[i]]
	}
	for _, a := range lf {
		d.m *= l.Dimensions[a]
		out = append(out, l.Dimensions[a])
	}
	for _, a := range rf {
		d.n *= r.Dimensions[a]
		out = append(out, r.Dimensions[a])
	}
	cat := func(gs ...[]int) []int { return slices.Concat(gs...) }
	d.lhsPerm, d.lhsT = choosePerm(cat(lb, lf, lc), cat(lb, lc, lf))
	d.rhsPerm, d.rhsT = choosePerm(cat(rb, rc, rf), cat(rb, rf, rc))
	d.lhsDims, d.rhsDims = permuted(l.Dimensions, d.lhsPerm), permuted(r.Dimensions, d.rhsPerm)
	return d, shapes.Make(dtypes.Float32, out...), nil
}

// choosePerm picks the operand's layout: as it is when its axes already read as the wanted
// matrix (straight) or its transpose (alt), else a copy permuted to straight. The returned
// permutation is nil when no copy is needed.
func choosePerm(straight, alt []int) ([]int, bool) {
	if isIdentity(straight) {
		return nil, false
	}
	if isIdentity(alt) {
		return nil, true
	}
	return straight, false
}

func isIdentity(p []int) bool {
	for i, a := range p {
		if a != i {
			return false
		}
	}
	return true
}

func permuted(dims, perm []int) []int {
	if perm == nil {
		return slices.Clone(dims)
	}
	out := make([]int, len(perm))
	for i, a := range perm {
		out[i] = dims[a]
	}
	return out
}

// runDot computes the product into out (length batch*m*n).
func runDot(d *dotAxes, lhs, rhs []float32, lhsDims, rhsDims []int, out []float32, threads int) error {
	if d.lhsPerm != nil {
		lhs = transposeF32(lhs, lhsDims, d.lhsPerm)
		defer putF32(lhs)
	}
	if d.rhsPerm != nil {
		rhs = transposeF32(rhs, rhsDims, d.rhsPerm)
		defer putF32(rhs)
	}
	mn := d.m * d.n
	view := func(data []float32, b, rows, cols int, t bool) Mat {
		chunk := data[b*rows*cols : (b+1)*rows*cols]
		if t { // stored [cols, rows]
			return RowMajor(chunk, rows).T()
		}
		return RowMajor(chunk, cols)
	}
	one := func(b, th int) error {
		return Gemm(d.m, d.n, d.k, view(lhs, b, d.m, d.k, d.lhsT), view(rhs, b, d.k, d.n, d.rhsT), out[b*mn:(b+1)*mn], d.n, th)
	}
	// Many small products (attention's heads) run side by side, one goroutine each; a few large
	// ones spread their tiles over the threads. Either way each output is one fixed chain. All
	// of them small (a decode step's attention: a few thousand multiply-adds per head) run on
	// the caller alone: handing parts to a helper costs more than they take, and a helper
	// that another goroutine keeps off its core stalls the step (decode through the node ran
	// at half the rate of one thread).
	if d.batch == 1 || threads <= 1 || d.m*d.n*d.k >= parallelMin*4 || d.batch*d.m*d.n*d.k < parallelMin {
		if d.m == 1 && !d.rhsT && active.row != nil && d.n*d.k < parallelMin && d.k > 0 {
			// One row against each B in place (a decode step's heads): the row kernel
			// straight, as Gemm would call it, without its checks and buffers per head
			// (half the time of a head's 4,096 multiply-adds). One row of A is contiguous
			// whether stored transposed or not.
			b := 0
			if active.heads4 != nil && d.n%32 == 0 && d.n < 128 {
				// Narrow products (a head's values: 32 or 64 columns) have too few chains to
				// hide the FMA's latency; four heads side by side have four times as many.
				for ; b+4 <= d.batch; b += 4 {
					for j := 0; j < d.n; j += 32 {
						active.heads4(d.k, lhs[b*d.k:], d.k, rhs[b*d.k*d.n+j:], d.k*d.n, out[b*d.n+j:], d.n, d.n)
					}
				}
			}
			for ; b < d.batch; b++ {
				active.row(d.k, lhs[b*d.k:(b+1)*d.k], rhs[b*d.k*d.n:(b+1)*d.k*d.n], d.n, out[b*d.n:(b+1)*d.n], d.n, 0)
			}
			return nil
		}
		for b := 0; b < d.batch; b++ {
			if err := one(b, threads); err != nil {
				return err
			}
		}
		return nil
	}
	// Contiguous runs of the batch, one per thread.
	var parts []func()
	errs := make([]error, threads)
	per := (d.batch + threads - 1) / threads
	for t, b0 := 0, 0; b0 < d.batch; t, b0 = t+1, b0+per {
		b1 := min(b0+per, d.batch)
		parts = append(parts, func() {
			for b := b0; b < b1 && errs[t] == nil; b++ {
				errs[t] = one(b, 1)
			}
		})
	}
	helpers.run(parts)
	return errors.Join(errs...)
}
