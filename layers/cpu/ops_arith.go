package cpu

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// binaryT applies f over two operands of the same rank whose size-1 axes broadcast (or a
// scalar on either side).
func binaryT[T, R any](l, r []T, ls, rs, out shapes.Shape, f func(a, b T) R) []R {
	res := make([]R, out.Size())
	switch {
	case len(l) == len(r) && ls.Equal(rs):
		for i := range res {
			res[i] = f(l[i], r[i])
		}
	case ls.IsScalar():
		for i := range res {
			res[i] = f(l[0], r[i])
		}
	case rs.IsScalar():
		for i := range res {
			res[i] = f(l[i], r[0])
		}
	default:
		lst, rst := strides(ls.Dimensions), strides(rs.Dimensions)
		for a := range out.Rank() {
			if ls.Dimensions[a] == 1 {
				lst[a] = 0
			}
			if rs.Dimensions[a] == 1 {
				rst[a] = 0
			}
		}
		// Walk the output's rows with both inputs' offsets; along a row each input steps by
		// its last stride (0 where it broadcasts).
		k := out.Rank() - 1
		inner, ls1, rs1 := out.Dimensions[k], lst[k], rst[k]
		n := len(res) / max(inner, 1)
		idx := make([]int, k)
		lo, ro := 0, 0
		for o := 0; o < n; o++ {
			row := res[o*inner : (o+1)*inner]
			for j := range row {
				row[j] = f(l[lo+j*ls1], r[ro+j*rs1])
			}
			for a := k - 1; a >= 0; a-- {
				idx[a]++
				lo += lst[a]
				ro += rst[a]
				if idx[a] < out.Dimensions[a] {
					break
				}
				lo -= lst[a] * out.Dimensions[a]
				ro -= rst[a] * out.Dimensions[a]
				idx[a] = 0
			}
		}
	}
	return res
}

func arith[T number](op backends.OpType) func(a, b T) T {
	switch op {
	case backends.OpTypeAdd:
		return func(a, b T) T { return a + b }
	case backends.OpTypeSub:
		return func(a, b T) T { return a - b }
	case backends.OpTypeMul:
		return func(a, b T) T { return T(a * b) }
	case backends.OpTypeDiv:
		return func(a, b T) T {
			if isInt[T]() && b == 0 {
				return 0
			}
			return a / b
		}
	case backends.OpTypeMax:
		return func(a, b T) T {
			if a != a || a > b { // NaN propagates
				return a
			}
			return b
		}
	case backends.OpTypeMin:
		return func(a, b T) T {
			if a != a || a < b {
				return a
			}
			return b
		}
	}
	return nil
}

func isInt[T number]() bool {
	var x T = 1
	x /= 2
	return x == 0
}

func compare[T number](op backends.OpType) func(a, b T) bool {
	switch op {
	case backends.OpTypeEqual:
		return func(a, b T) bool { return a == b }
	case backends.OpTypeNotEqual:
		return func(a, b T) bool { return a != b }
	case backends.OpTypeGreaterThan:
		return func(a, b T) bool { return a > b }
	case backends.OpTypeGreaterOrEqual:
		return func(a, b T) bool { return a >= b }
	case backends.OpTypeLessThan:
		return func(a, b T) bool { return a < b }
	case backends.OpTypeLessOrEqual:
		return func(a, b T) bool { return a <= b }
	}
	return nil
}

func binaryNum[T number](op backends.OpType, l, r []T, ls, rs, out shapes.Shape) any {
	if f := compare[T](op); f != nil {
		return binaryT(l, r, ls, rs, out, f)
	}
	return binaryT(l, r, ls, rs, out, arith[T](op))
}

func binaryAny(op backends.OpType, l, r *Buffer, out shapes.Shape, threads int) (any, error) {
	switch lv := l.flat.(type) {
	case []float32:
		if res, ok := binaryF32(op, lv, r.flat.([]float32), l.shape, r.shape, threads); ok {
			return res, nil
		}
		return binaryNum(op, lv, r.flat.([]float32), l.shape, r.shape, out), nil
	case []float64:
		return binaryNum(op, lv, r.flat.([]float64), l.shape, r.shape, out), nil
	case []int32:
		if rv := r.flat.([]int32); op == backends.OpTypeEqual && l.shape.Rank() == 3 && outer(l.shape, r.shape) {
			return oneHot(lv, rv), nil
		}
		return binaryNum(op, lv, r.flat.([]int32), l.shape, r.shape, out), nil
	case []int64:
		return binaryNum(op, lv, r.flat.([]int64), l.shape, r.shape, out), nil
	case []bool:
		switch op {
		case backends.OpTypeEqual:
			return binaryT(lv, r.flat.([]bool), l.shape, r.shape, out, func(a, b bool) bool { return a == b }), nil
		case backends.OpTypeNotEqual:
			return binaryT(lv, r.flat.([]bool), l.shape, r.shape, out, func(a, b bool) bool { return a != b }), nil
		}
	}
	return nil, fmt.Errorf("cpu backend: %s of %s", op, l.shape.DType)
}

// outer tells whether l is [A,B,1] and r [1,1,C]: OneHot's comparison of every ID with
// every class.
func outer(l, r shapes.Shape) bool {
	return r.Rank() == 3 && l.Dimensions[2] == 1 && r.Dimensions[0] == 1 && r.Dimensions[1] == 1
}

// oneHot is ids [A,B,1] == classes [1,1,C] as [A,B,C], row by row without a call per value
// (the generic walk took 6 ns a value on the training step's [8,64,258]).
func oneHot(ids, classes []int32) []bool {
	c := len(classes)
	res := make([]bool, len(ids)*c)
	for i, id := range ids {
		row := res[i*c : (i+1)*c]
		for j, k := range classes {
			row[j] = id == k
		}
	}
	return res
}

func unaryFloat(op backends.OpType) func(x float64) float64 {
	switch op {
	case backends.OpTypeExp:
		return math.Exp
	case backends.OpTypeLog:
		return math.Log
	case backends.OpTypeSqrt:
		return math.Sqrt
	case backends.OpTypeRsqrt:
		return func(x float64) float64 { return 1 / math.Sqrt(x) }
	case backends.OpTypeTanh:
		return math.Tanh
	case backends.OpTypeLogistic:
		return func(x float64) float64 {
			if x >= 0 {
				return 1 / (1 + math.Exp(-x))
			}
			e := math.Exp(x)
			return e / (1 + e)
		}
	}
	return nil
}

func unaryAny(op backends.OpType, x *Buffer, threads int) (any, error) {
	switch v := x.flat.(type) {
	case []float32:
		out := getF32(len(v))
		switch op {
		case backends.OpTypeNeg:
			for i, a := range v {
				out[i] = -a
			}
		case backends.OpTypeAbs:
			for i, a := range v {
				out[i] = float32(math.Abs(float64(a)))
			}
		case backends.OpTypeExp:
			eachPart(threads, out, v, expRow)
		case backends.OpTypeLogistic:
			eachPart(threads, out, v, logisticRow)
		default:
			f := unaryFloat(op)
			for i, a := range v {
				out[i] = float32(f(float64(a)))
			}
		}
		return out, nil
	case []float64:
		out := make([]float64, len(v))
		switch op {
		case backends.OpTypeNeg:
			for i, a := range v {
				out[i] = -a
			}
		case backends.OpTypeAbs:
			for i, a := range v {
				out[i] = math.Abs(a)
			}
		default:
			f := unaryFloat(op)
			for i, a := range v {
				out[i] = f(a)
			}
		}
		return out, nil
	case []int32:
		return negAbsInt(op, v), nil
	case []int64:
		return negAbsInt(op, v), nil
	}
	return nil, fmt.Errorf("cpu backend: %s of %s", op, x.shape.DType)
}

func negAbsInt[T ~int32 | ~int64](op backends.OpType, v []T) []T {
	out := make([]T, len(v))
	for i, a := range v {
		if op == backends.OpTypeNeg || a < 0 {
			a = -a
		}
		out[i] = a
	}
	return out
}

// binaryF32 runs the arithmetic ops on float32 operands in straight row loops (the general
// path calls a function per element): one shape, a scalar on either side, or size-1 axes.
func binaryF32(op backends.OpType, l, r []float32, ls, rs shapes.Shape, threads int) ([]float32, bool) {
	switch op {
	case backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv:
	default:
		return nil, false
	}
	// The operands as rowOp takes them: a row each, or one of them a repeated value.
	var lr, rr []float32
	var lv, rv float32
	switch {
	case len(l) == len(r) && ls.Equal(rs):
		lr, rr = l, r
	case ls.IsScalar():
		rr, lv = r, l[0]
	case rs.IsScalar():
		lr, rv = l, r[0]
	default:
		return binaryF32Broadcast(op, l, r, ls, rs, threads)
	}
	out := getF32(max(len(lr), len(rr)))
	if !splits(threads, len(out), elemParallelMin) { // no closure made: it would be allocated
		rowOp(op, out, lr, rr, lv, rv)
		return out, true
	}
	spread(threads, len(out), elemParallelMin, func(lo, hi int) {
		rowOp(op, out[lo:hi], part(lr, lo, hi), part(rr, lo, hi), lv, rv)
	})
	return out, true
}

// part is s[lo:hi], or nil for a nil s (an operand that is a repeated value).
func part(s []float32, lo, hi int) []float32 {
	if s == nil {
		return nil
	}
	return s[lo:hi]
}

// eachPart runs a row function over src into dst, split over the helpers when the work is
// large enough (the closure that goes to them is made only then).
func eachPart(threads int, dst, src []float32, row func(dst, src []float32)) {
	if !splits(threads, len(src), elemParallelMin) {
		row(dst, src)
		return
	}
	spread(threads, len(src), elemParallelMin, func(lo, hi int) { row(dst[lo:hi], src[lo:hi]) })
}

// binaryF32Broadcast runs an arithmetic op on float32 operands of one rank whose size-1 axes
// broadcast: the outer axes are walked once per row of the last axis, and each row is a
// straight loop (both operands stepping, or one of them a repeated value).
func binaryF32Broadcast(op backends.OpType, l, r []float32, ls, rs shapes.Shape, threads int) ([]float32, bool) {
	rank := ls.Rank()
	if rank == 0 || rank != rs.Rank() {
		return nil, false
	}
	switch op {
	case backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv:
	default:
		return nil, false
	}
	dims := make([]int, rank)
	lst, rst := strides(ls.Dimensions), strides(rs.Dimensions)
	for a := range dims {
		dims[a] = max(ls.Dimensions[a], rs.Dimensions[a])
		if ls.Dimensions[a] == 1 {
			lst[a] = 0
		}
		if rs.Dimensions[a] == 1 {
			rst[a] = 0
		}
	}
	size := 1
	for _, d := range dims {
		size *= d
	}
	out := getF32(size)
	if size == 0 {
		return out, true
	}
	bc := broadcastOp{op: op, out: out, l: l, r: r, dims: dims, lst: lst, rst: rst}
	n, unit := size/dims[rank-1], max(1, elemParallelMin/dims[rank-1])
	if !splits(threads, n, unit) {
		bc.rows(0, n)
		return out, true
	}
	par := bc // only this copy escapes to the helpers
	spread(threads, n, unit, par.rows)
	return out, true
}

// broadcastOp is a broadcasting arithmetic op over the rows of its output's last axis.
type broadcastOp struct {
	op             backends.OpType
	out, l, r      []float32
	dims, lst, rst []int // the output's dimensions, the operands' strides (0 where they broadcast)
}

// rows computes output rows first..end-1, each operand's offset found from the row's index.
func (b *broadcastOp) rows(first, end int) {
	rank := len(b.dims)
	inner := b.dims[rank-1]
	ls1, rs1 := b.lst[rank-1], b.rst[rank-1]
	var idxBuf [8]int
	idx := idxBuf[:]
	if rank-1 > len(idxBuf) {
		idx = make([]int, rank-1)
	}
	idx = idx[:rank-1]
	lo, ro := 0, 0
	for a, k := rank-2, first; a >= 0; a-- {
		idx[a] = k % b.dims[a]
		k /= b.dims[a]
		lo += idx[a] * b.lst[a]
		ro += idx[a] * b.rst[a]
	}
	for o := first * inner; o < end*inner; o += inner {
		row := b.out[o : o+inner]
		var lr, rr []float32
		if ls1 != 0 {
			lr = b.l[lo : lo+inner]
		}
		if rs1 != 0 {
			rr = b.r[ro : ro+inner]
		}
		rowOp(b.op, row, lr, rr, b.l[lo], b.r[ro])
		for a := rank - 2; a >= 0; a-- {
			idx[a]++
			lo += b.lst[a]
			ro += b.rst[a]
			if idx[a] < b.dims[a] {
				break
			}
			lo -= b.lst[a] * b.dims[a]
			ro -= b.rst[a] * b.dims[a]
			idx[a] = 0
		}
	}
}

// rowOp computes one row: lr and rr are the operands' rows, or nil where that operand is the
// single value lv or rv along the row.
func rowOp(op backends.OpType, row, lr, rr []float32, lv, rv float32) {
	if !vecRow(op, row, lr, rr, lv, rv) {
		rowOpGo(op, row, lr, rr, lv, rv)
	}
}

// rowOpGo is rowOp in plain Go: the reference of the row kernels, and their fallback.
func rowOpGo(op backends.OpType, row, lr, rr []float32, lv, rv float32) {
	switch {
	case lr != nil && rr != nil:
		switch op {
		case backends.OpTypeAdd:
			for j := range row {
				row[j] = lr[j] + rr[j]
			}
		case backends.OpTypeSub:
			for j := range row {
				row[j] = lr[j] - rr[j]
			}
		case backends.OpTypeMul:
			for j := range row {
				row[j] = lr[j] * rr[j]
			}
		case backends.OpTypeDiv:
			for j := range row {
				row[j] = lr[j] / rr[j]
			}
		}
	case lr != nil:
		switch op {
		case backends.OpTypeAdd:
			for j := range row {
				row[j] = lr[j] + rv
			}
		case backends.OpTypeSub:
			for j := range row {
				row[j] = lr[j] - rv
			}
		case backends.OpTypeMul:
			for j := range row {
				row[j] = lr[j] * rv
			}
		case backends.OpTypeDiv:
			for j := range row {
				row[j] = lr[j] / rv
			}
		}
	case rr != nil:
		switch op {
		case backends.OpTypeAdd:
			for j := range row {
				row[j] = lv + rr[j]
			}
		case backends.OpTypeSub:
			for j := range row {
				row[j] = lv - rr[j]
			}
		case backends.OpTypeMul:
			for j := range row {
				row[j] = lv * rr[j]
			}
		case backends.OpTypeDiv:
			for j := range row {
				row[j] = lv / rr[j]
			}
		}
	default:
		var v float32
		switch op {
		case backends.OpTypeAdd:
			v = lv + rv
		case backends.OpTypeSub:
			v = lv - rv
		case backends.OpTypeMul:
			v = lv * rv
		case backends.OpTypeDiv:
			v = lv / rv
		}
		for j := range row {
			row[j] = v
		}
	}
}
