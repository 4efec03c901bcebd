package cpu

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// DynamicUpdateSlice writes update into operand at startIndices (scalars, one per axis,
// clamped so the update fits, as XLA defines it). It is how the KV cache takes a step's new
// keys and values: when the operand is an input the caller donated and nothing else reads, the
// write happens in place, so a step costs the new positions, not a copy of the cache.
func (b *Builder) DynamicUpdateSlice(operand, update backends.Op, startIndices []backends.Op) (backends.Op, error) {
	ns, err := b.in(append([]backends.Op{operand, update}, startIndices...)...)
	if err != nil {
		return nil, err
	}
	op, up := ns[0].shape, ns[1].shape
	if op.DType != up.DType || op.Rank() != up.Rank() || len(startIndices) != op.Rank() {
		return nil, fmt.Errorf("cpu backend: DynamicUpdateSlice of %s into %s with %d start indices", up, op, len(startIndices))
	}
	for i, d := range up.Dimensions {
		if d > op.Dimensions[i] {
			return nil, fmt.Errorf("cpu backend: DynamicUpdateSlice: update %s larger than operand %s on axis %d", up, op, i)
		}
	}
	for i, s := range ns[2:] {
		if s.shape.Rank() != 0 || (s.shape.DType != dtypes.Int32 && s.shape.DType != dtypes.Int64) {
			return nil, fmt.Errorf("cpu backend: DynamicUpdateSlice start index %d is %s, want an int32 or int64 scalar", i, s.shape)
		}
	}
	return b.node(backends.OpTypeDynamicUpdateSlice, op.Clone(), ns...), nil
}

// updateSlice writes update into dst (the operand's values, or their copy) at the clamped
// start, row by row of the last axis.
func updateSlice(dst any, dims []int, update *Buffer, starts []*Buffer) {
	rank := len(dims)
	udims := update.shape.Dimensions
	start := make([]int, rank)
	for i, s := range starts {
		var v int64
		switch f := s.flat.(type) {
		case []int32:
			v = int64(f[0])
		case []int64:
			v = f[0]
		}
		start[i] = int(min(max(v, 0), int64(dims[i]-udims[i])))
	}
	if rank == 0 {
		copyFlat(dst, update.flat)
		return
	}
	// Strides of the operand; the update is walked row by row (its last axis contiguous).
	stride := make([]int, rank)
	stride[rank-1] = 1
	for i := rank - 2; i >= 0; i-- {
		stride[i] = stride[i+1] * dims[i+1]
	}
	row := udims[rank-1]
	rows := update.shape.Size() / max(row, 1)
	if row == 0 || rows == 0 {
		return
	}
	// The operand offset of the update's first row; the odometer over the update's leading
	// axes moves it by the operand's strides.
	off := start[rank-1]
	for i := 0; i < rank-1; i++ {
		off += start[i] * stride[i]
	}
	switch d := dst.(type) {
	case []float32:
		placeRows(d, update.flat.([]float32), off, row, rows, udims, stride)
	case []float64:
		placeRows(d, update.flat.([]float64), off, row, rows, udims, stride)
	case []int32:
		placeRows(d, update.flat.([]int32), off, row, rows, udims, stride)
	case []int64:
		placeRows(d, update.flat.([]int64), off, row, rows, udims, stride)
	case []bool:
		placeRows(d, update.flat.([]bool), off, row, rows, udims, stride)
	}
}

// placeRows copies the update's rows (row values each) to dst, the first at off, the next
// found by an odometer over the update's leading dimensions udims with the operand's strides.
// A column of the key cache is rows of one value: element by element through an interface,
// the write cost more than the step's attention over it (28 us a layer at batch 8 on base).
func placeRows[T any](dst, src []T, off, row, rows int, udims, stride []int) {
	rank := len(udims)
	idx := make([]int, rank-1)
	for r := 0; r < rows; r++ {
		if row == 1 {
			dst[off] = src[r]
		} else {
			copy(dst[off:off+row], src[r*row:(r+1)*row])
		}
		for i := rank - 2; i >= 0; i-- {
			off += stride[i]
			if idx[i]++; idx[i] < udims[i] {
				break
			}
			off -= udims[i] * stride[i]
			idx[i] = 0
		}
	}
}

// copyRange copies n values of src from s into dst at d.
func copyRange(dst any, d int, src any, s, n int) {
	switch x := dst.(type) {
	case []float32:
		copy(x[d:d+n], src.([]float32)[s:s+n])
	case []float64:
		copy(x[d:d+n], src.([]float64)[s:s+n])
	case []int32:
		copy(x[d:d+n], src.([]int32)[s:s+n])
	case []int64:
		copy(x[d:d+n], src.([]int64)[s:s+n])
	case []bool:
		copy(x[d:d+n], src.([]bool)[s:s+n])
	}
}
