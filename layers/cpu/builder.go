package cpu

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/notimplemented"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// supported is every op the backend runs; the embedded notimplemented.Builder answers the
// rest with an error naming the op.
var supported = map[backends.OpType]bool{}

func init() {
	for _, op := range []backends.OpType{
		backends.OpTypeParameter, backends.OpTypeConstant, backends.OpTypeIdentity,
		backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv,
		backends.OpTypeMax, backends.OpTypeMin, backends.OpTypeEqual, backends.OpTypeNotEqual,
		backends.OpTypeGreaterThan, backends.OpTypeGreaterOrEqual, backends.OpTypeLessThan, backends.OpTypeLessOrEqual,
		backends.OpTypeNeg, backends.OpTypeAbs, backends.OpTypeExp, backends.OpTypeLog, backends.OpTypeSqrt,
		backends.OpTypeRsqrt, backends.OpTypeLogistic, backends.OpTypeTanh,
		backends.OpTypeBroadcast, backends.OpTypeBroadcastInDim, backends.OpTypeConvertDType, backends.OpTypeDotGeneral,
		backends.OpTypeIota, backends.OpTypeReduceMax, backends.OpTypeReduceSum, backends.OpTypeReshape,
		backends.OpTypeTranspose, backends.OpTypeWhere, backends.OpTypeDynamicUpdateSlice,
		backends.OpTypeSlice, backends.OpTypeConcatenate,
	} {
		supported[op] = true
	}
}

// node is one op of a computation being built.
type node struct {
	b      *Builder
	op     backends.OpType
	shape  shapes.Shape
	inputs []*node

	axes     []int        // reductions, transposes (permutation), broadcasts (axes map), slice starts, the concatenation axis
	strides  []int        // slices
	dot      *dotAxes     // DotGeneral
	value    *Buffer      // constants
	param    int          // parameters: their position
	paramFor string       // parameters: their name
	iotaAxis int          // iota
	dtype    dtypes.DType // conversions
}

// Builder records a computation's ops; Compile turns them into an Executable.
type Builder struct {
	notimplemented.Builder
	be     *Backend
	name   string
	params []*node
}

var _ backends.Builder = (*Builder)(nil)

func newBuilder(be *Backend, name string) *Builder {
	b := &Builder{be: be, name: name}
	b.ErrFn = func(op backends.OpType) error {
		return fmt.Errorf("cpu backend: op %s is not implemented (the model used an op this backend lacks; select --backend simplego to run it)", op)
	}
	return b
}

func (b *Builder) Name() string { return b.name }

func (b *Builder) node(op backends.OpType, s shapes.Shape, inputs ...*node) *node {
	return &node{b: b, op: op, shape: s, inputs: inputs}
}

// in checks that ops are nodes of this builder.
func (b *Builder) in(ops ...backends.Op) ([]*node, error) {
	out := make([]*node, len(ops))
	for i, op := range ops {
		n, ok := op.(*node)
		if !ok || n == nil || n.b != b {
			return nil, fmt.Errorf("cpu backend: operand %d is not an op of this computation", i)
		}
		out[i] = n
	}
	return out, nil
}

func (b *Builder) OpShape(op backends.Op) (shapes.Shape, error) {
	ns, err := b.in(op)
	if err != nil {
		return shapes.Invalid(), err
	}
	return ns[0].shape, nil
}

func (b *Builder) Parameter(name string, s shapes.Shape, _ *backends.ShardingSpec) (backends.Op, error) {
	if !s.Ok() {
		return nil, fmt.Errorf("cpu backend: parameter %q has an invalid shape", name)
	}
	n := b.node(backends.OpTypeParameter, s)
	n.param, n.paramFor = len(b.params), name
	b.params = append(b.params, n)
	return n, nil
}

func (b *Builder) Constant(flat any, dims ...int) (backends.Op, error) {
	v := reflect.ValueOf(flat)
	if v.Kind() != reflect.Slice {
		return nil, fmt.Errorf("cpu backend: constant of %T, want a slice", flat)
	}
	dt := dtypes.FromGoType(v.Type().Elem())
	s := shapes.Make(dt, dims...)
	if !s.Ok() || s.Size() != v.Len() {
		return nil, fmt.Errorf("cpu backend: constant of %d values for dims %v", v.Len(), dims)
	}
	buf := newBuffer(s)
	reflect.Copy(reflect.ValueOf(buf.flat), v)
	n := b.node(backends.OpTypeConstant, s)
	n.value = buf
	return n, nil
}

func (b *Builder) Identity(x backends.Op) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	return b.node(backends.OpTypeIdentity, ns[0].shape, ns[0]), nil
}

func (b *Builder) binary(op backends.OpType, lhs, rhs backends.Op) (backends.Op, error) {
	ns, err := b.in(lhs, rhs)
	if err != nil {
		return nil, err
	}
	var s shapes.Shape
	if isComparison(op) {
		s, err = shapeinference.ComparisonOp(op, ns[0].shape, ns[1].shape)
	} else {
		s, err = shapeinference.BinaryOp(op, ns[0].shape, ns[1].shape)
	}
	if err != nil {
		return nil, err
	}
	return b.node(op, s, ns...), nil
}

func (b *Builder) Add(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeAdd, l, r)
}
func (b *Builder) Sub(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeSub, l, r)
}
func (b *Builder) Mul(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMul, l, r)
}
func (b *Builder) Div(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeDiv, l, r)
}
func (b *Builder) Max(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMax, l, r)
}
func (b *Builder) Min(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMin, l, r)
}
func (b *Builder) Equal(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeEqual, l, r)
}
func (b *Builder) NotEqual(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeNotEqual, l, r)
}
func (b *Builder) GreaterThan(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeGreaterThan, l, r)
}
func (b *Builder) GreaterOrEqual(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeGreaterOrEqual, l, r)
}
func (b *Builder) LessThan(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeLessThan, l, r)
}
func (b *Builder) LessOrEqual(l, r backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeLessOrEqual, l, r)
}

func isComparison(op backends.OpType) bool {
	switch op {
	case backends.OpTypeEqual, backends.OpTypeNotEqual, backends.OpTypeGreaterThan, backends.OpTypeGreaterOrEqual,
		backends.OpTypeLessThan, backends.OpTypeLessOrEqual:
		return true
	}
	return false
}

func (b *Builder) unary(op backends.OpType, x backends.Op) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	s, err := shapeinference.UnaryOp(op, ns[0].shape)
	if err != nil {
		return nil, err
	}
	if op != backends.OpTypeNeg && op != backends.OpTypeAbs && !s.DType.IsFloat() {
		return nil, fmt.Errorf("cpu backend: %s of %s: float only", op, s.DType)
	}
	return b.node(op, s, ns...), nil
}

func (b *Builder) Neg(x backends.Op) (backends.Op, error)  { return b.unary(backends.OpTypeNeg, x) }
func (b *Builder) Abs(x backends.Op) (backends.Op, error)  { return b.unary(backends.OpTypeAbs, x) }
func (b *Builder) Exp(x backends.Op) (backends.Op, error)  { return b.unary(backends.OpTypeExp, x) }
func (b *Builder) Log(x backends.Op) (backends.Op, error)  { return b.unary(backends.OpTypeLog, x) }
func (b *Builder) Sqrt(x backends.Op) (backends.Op, error) { return b.unary(backends.OpTypeSqrt, x) }
func (b *Builder) Rsqrt(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeRsqrt, x)
}
func (b *Builder) Tanh(x backends.Op) (backends.Op, error) { return b.unary(backends.OpTypeTanh, x) }
func (b *Builder) Logistic(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeLogistic, x)
}

func (b *Builder) Where(cond, onTrue, onFalse backends.Op) (backends.Op, error) {
	ns, err := b.in(cond, onTrue, onFalse)
	if err != nil {
		return nil, err
	}
	s, err := shapeinference.WhereOp(ns[0].shape, ns[1].shape, ns[2].shape)
	if err != nil {
		return nil, err
	}
	return b.node(backends.OpTypeWhere, s, ns...), nil
}

func (b *Builder) Reshape(x backends.Op, dims ...int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	s, err := shapeinference.ReshapeOp(ns[0].shape, dims)
	if err != nil {
		return nil, err
	}
	return b.node(backends.OpTypeReshape, s, ns...), nil
}

func (b *Builder) Transpose(x backends.Op, perm ...int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	s, err := shapeinference.TransposeOp(ns[0].shape, perm)
	if err != nil {
		return nil, err
	}
	n := b.node(backends.OpTypeTranspose, s, ns...)
	n.axes = slices.Clone(perm)
	return n, nil
}

func (b *Builder) Broadcast(x backends.Op, prefix ...int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	s, err := shapeinference.BroadcastOp(ns[0].shape, prefix)
	if err != nil {
		return nil, err
	}
	// A prefix broadcast is BroadcastInDim onto the trailing axes.
	n := b.node(backends.OpTypeBroadcastInDim, s, ns...)
	for i := range ns[0].shape.Rank() {
		n.axes = append(n.axes, len(prefix)+i)
	}
	return n, nil
}

func (b *Builder) BroadcastInDim(x backends.Op, out shapes.Shape, axes []int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	if err := shapeinference.BroadcastInDimOp(ns[0].shape, out, axes); err != nil {
		return nil, err
	}
	n := b.node(backends.OpTypeBroadcastInDim, out, ns...)
	n.axes = slices.Clone(axes)
	return n, nil
}

func (b *Builder) reduce(op backends.OpType, x backends.Op, axes []int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	if len(axes) == 0 { // every axis
		for i := range ns[0].shape.Rank() {
			axes = append(axes, i)
		}
	}
	s, err := shapeinference.ReduceOp(ns[0].shape, axes)
	if err != nil {
		return nil, err
	}
	n := b.node(op, s, ns...)
	n.axes = slices.Clone(axes)
	slices.Sort(n.axes)
	return n, nil
}

func (b *Builder) ReduceSum(x backends.Op, axes ...int) (backends.Op, error) {
	return b.reduce(backends.OpTypeReduceSum, x, axes)
}
func (b *Builder) ReduceMax(x backends.Op, axes ...int) (backends.Op, error) {
	return b.reduce(backends.OpTypeReduceMax, x, axes)
}

func (b *Builder) ConvertDType(x backends.Op, dt dtypes.DType) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	if !knownDType(dt) || !knownDType(ns[0].shape.DType) {
		return nil, fmt.Errorf("cpu backend: ConvertDType %s -> %s: dtypes supported are float32, float64, int32, int64, bool", ns[0].shape.DType, dt)
	}
	s := ns[0].shape.Clone()
	s.DType = dt
	n := b.node(backends.OpTypeConvertDType, s, ns...)
	n.dtype = dt
	return n, nil
}

func knownDType(dt dtypes.DType) bool {
	switch dt {
	case dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Int64, dtypes.Bool:
		return true
	}
	return false
}

func (b *Builder) Iota(s shapes.Shape, axis int) (backends.Op, error) {
	if !s.Ok() || s.Rank() == 0 || axis < 0 || axis >= s.Rank() || !knownDType(s.DType) || s.DType == dtypes.Bool {
		return nil, fmt.Errorf("cpu backend: Iota of %s on axis %d", s, axis)
	}
	n := b.node(backends.OpTypeIota, s)
	n.iotaAxis = axis
	return n, nil
}

func (b *Builder) DotGeneral(lhs backends.Op, lhsContract, lhsBatch []int, rhs backends.Op, rhsContract, rhsBatch []int) (backends.Op, error) {
	ns, err := b.in(lhs, rhs)
	if err != nil {
		return nil, err
	}
	d, s, err := planDot(ns[0].shape, lhsContract, lhsBatch, ns[1].shape, rhsContract, rhsBatch)
	if err != nil {
		return nil, err
	}
	n := b.node(backends.OpTypeDotGeneral, s, ns...)
	n.dot = d
	return n, nil
}

// Compile orders the ops that the outputs need and returns the executable.
func (b *Builder) Compile(outputs []backends.Op, _ []*backends.ShardingSpec) (backends.Executable, error) {
	outs, err := b.in(outputs...)
	if err != nil {
		return nil, err
	}
	return newExecutable(b, outs), nil
}
