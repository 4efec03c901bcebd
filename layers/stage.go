package layers

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // gomlx's pure-Go backend, the reference
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/neuroshard/neuroshard/layers/cpu"
)

// Backends the model runs on: the project's CPU backend (the default), and gomlx's pure-Go
// backend with sequential ops as the reference (its default parallel mode froze training in
// 2 of 3 runs: DotGeneral ops holding every worker slot while waiting for more).
const (
	BackendCPU      = cpu.BackendName
	BackendSimpleGo = "simplego"
)

var backendConfigs = map[string]string{BackendCPU: cpu.BackendName, BackendSimpleGo: "go:ops_sequential"}

var (
	backendMu   sync.Mutex
	backendName = BackendCPU
	backend     backends.Backend
)

// SetBackend chooses the backend of stages made after it: BackendCPU (optionally with its
// config, "cpu:threads=N") or BackendSimpleGo.
func SetBackend(name string) error {
	if base, conf, ok := strings.Cut(name, ":"); ok && base == BackendCPU {
		if _, err := cpu.New(conf); err != nil {
			return err
		}
	} else if _, ok := backendConfigs[name]; !ok {
		return fmt.Errorf("layers: unknown backend %q (known: %s, %s)", name, BackendCPU, BackendSimpleGo)
	}
	backendMu.Lock()
	defer backendMu.Unlock()
	if name != backendName {
		backendName, backend = name, nil
	}
	return nil
}

// BackendName is the backend in use.
func BackendName() string {
	backendMu.Lock()
	defer backendMu.Unlock()
	return backendName
}

func sharedBackend() (backends.Backend, error) {
	backendMu.Lock()
	defer backendMu.Unlock()
	if backend == nil {
		conf, ok := backendConfigs[backendName]
		if !ok {
			conf = backendName // cpu with its config
		}
		be, err := backends.NewWithConfig(conf)
		if err != nil {
			return nil, err
		}
		backend = be
	}
	return backend, nil
}

// Stage holds a contiguous span of the model's layers with their parameters and runs them.
// The first stage takes token IDs and holds the embedding; the last holds the final norm and
// the LM head and returns logits (and the loss in training). One stage may hold the whole
// model. A Stage is safe for concurrent use; its computations run one at a time.
type Stage struct {
	cfg  Config
	span Span
	be   backends.Backend // chosen when the stage was made; every computation of it runs there

	mu      sync.Mutex
	params  *Params
	tensors []*tensors.Tensor      // params as backend tensors; nil after the params change
	hash    string                 // hash of params; "" after the params change
	known   atomic.Pointer[string] // hash, readable without s.mu; nil after the params change
	fwd     *Exec
	bwd     *Exec
	dec     *Exec // KV-cache decoding, built by the first session
	rows    *Exec // batched single-position steps of several sessions, built by the first
	batch   batcher
	pools   map[int]*kvPool // single-sequence sessions' caches by size (kvpool.go)
	spare   map[int]*kvPool // pools whose last session left, kept for the next (kvpool.go)
}

// A StageOption changes how a stage runs.
type StageOption func(*stageOptions)

type stageOptions struct {
	busy  func() bool
	limit time.Duration
}

// InBackground makes the stage's computations give the cores to foreground work: on the cpu
// backend each computation, before each of its ops, waits while busy() reports foreground
// work, for at most limit in all (cpu.Backend.Yielding). A node's training stage runs so,
// busy while it serves inference: a training step in flight stops within one op. Results are
// the same bits; on simplego the option has no effect.
func InBackground(busy func() bool, limit time.Duration) StageOption {
	return func(o *stageOptions) { o.busy, o.limit = busy, limit }
}

// NewStage builds a stage for a span with the given parameters (InitParams for a fresh model).
func NewStage(cfg Config, span Span, params *Params, opts ...StageOption) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := span.CheckIn(cfg.Layers); err != nil {
		return nil, err
	}
	if err := params.Check(cfg.ParamSpecs(span)); err != nil {
		return nil, err
	}
	be, err := sharedBackend()
	if err != nil {
		return nil, fmt.Errorf("layers: backend %s: %w", BackendName(), err)
	}
	var o stageOptions
	for _, opt := range opts {
		opt(&o)
	}
	if c, ok := be.(*cpu.Backend); ok && o.busy != nil && o.limit > 0 {
		be = c.Yielding(o.busy, o.limit)
	}
	s := &Stage{cfg: cfg, span: span, params: params.Clone(), be: be}
	nParams := len(params.Specs)
	if s.fwd, err = NewExec(be, func(in []*Node) *Node {
		return s.nodes(in, nParams).forward()
	}); err != nil {
		return nil, err
	}
	if s.bwd, err = NewExec(be, func(in []*Node) []*Node { return s.backwardGraph(in, nParams) }); err != nil {
		return nil, err
	}
	s.fwd.SetMaxCache(maxCompiled)
	s.bwd.SetMaxCache(maxCompiled)
	return s, nil
}

// Config is the model configuration.
func (s *Stage) Config() Config { return s.cfg }

// Span is the layer span the stage holds.
func (s *Stage) Span() Span { return s.span }

// IsFirst reports whether the stage takes token IDs.
func (s *Stage) IsFirst() bool { return s.span.First == 0 }

// IsLast reports whether the stage returns logits.
func (s *Stage) IsLast() bool { return s.span.Last == s.cfg.Layers-1 }

// Params returns a copy of the stage's parameters.
func (s *Stage) Params() *Params {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params.Clone()
}

// Hash is the hash of the stage's parameters, computed once per parameter version; a known
// hash is read without waiting for a computation to finish.
func (s *Stage) Hash() string {
	if h := s.known.Load(); h != nil {
		return *h
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hash == "" {
		s.hash = s.params.Hash()
	}
	h := s.hash
	s.known.Store(&h)
	return h
}

// SetParams replaces the stage's parameters after checking names, shapes and values.
func (s *Stage) SetParams(p *Params) error {
	if err := p.Check(s.cfg.ParamSpecs(s.span)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.params, s.tensors, s.hash = p.Clone(), nil, ""
	s.known.Store(nil)
	return nil
}

func (s *Stage) nodes(in []*Node, nParams int) *stageNodes {
	n := &stageNodes{cfg: s.cfg, span: s.span, p: map[string]*Node{}}
	for i, spec := range s.cfg.ParamSpecs(s.span) {
		n.p[spec.Name] = in[i]
	}
	n.in, n.cos, n.sin, n.mask = in[nParams], in[nParams+1], in[nParams+2], in[nParams+3]
	return n
}

// backwardGraph: inputs params..., in, cos, sin, mask, dOut (or targets and loss weights on
// the last stage); outputs [loss (last stage)], [dInput (not first stage)], dParams...
// A middle stage differentiates the surrogate sum(out · dOut), whose gradient with respect to
// the stage's parameters and input is exactly the chain rule's.
func (s *Stage) backwardGraph(in []*Node, nParams int) []*Node {
	n := s.nodes(in, nParams)
	extra := in[nParams+4] // dOut [B,T,D], or targets [B,T] on the last stage
	out := n.forward()
	var objective *Node
	var outs []*Node
	if s.IsLast() {
		objective = meanCrossEntropy(out, extra, in[nParams+5], s.cfg.Vocab)
		outs = append(outs, objective)
	} else {
		objective = ReduceAllSum(Mul(out, extra))
	}
	wrt := append([]*Node{}, in[:nParams]...)
	if !s.IsFirst() {
		wrt = append([]*Node{n.in}, wrt...)
	}
	outs = append(outs, Gradient(objective, wrt...)...)
	forgetGraph(objective.Graph())
	return outs
}

// paramTensors converts the parameters to backend tensors once per parameter version.
func (s *Stage) paramTensors() []*tensors.Tensor {
	if s.tensors == nil {
		s.tensors = make([]*tensors.Tensor, len(s.params.Values))
		for i, v := range s.params.Values {
			s.tensors[i] = tensors.FromFlatDataAndDimensions(v, s.params.Specs[i].Dims...)
		}
	}
	return s.tensors
}

// checkInput validates the stage's input and returns its batch and sequence length.
func (s *Stage) checkInput(in *Tensor) (b, t int, err error) {
	if s.IsFirst() {
		if err := checkTokens("input", in, s.cfg.Vocab, s.cfg.Context); err != nil {
			return 0, 0, err
		}
		return in.Dims[0], in.Dims[1], nil
	}
	if in == nil || len(in.Dims) != 3 {
		return 0, 0, fmt.Errorf("%w: input must be an activation [batch, seq, %d]", ErrBadInput, s.cfg.DModel)
	}
	b, t = in.Dims[0], in.Dims[1]
	if b < 1 || t < 1 || t > s.cfg.Context {
		return 0, 0, fmt.Errorf("%w: input shape %v (seq must be 1-%d)", ErrBadInput, in.Dims, s.cfg.Context)
	}
	return b, t, checkF32("input", in, b, t, s.cfg.DModel)
}

func toBackend(t *Tensor) *tensors.Tensor {
	if t.I32 != nil {
		return tensors.FromFlatDataAndDimensions(t.I32, t.Dims...)
	}
	return tensors.FromFlatDataAndDimensions(t.F32, t.Dims...)
}

// onBackend is t as a tensor already on the stage's backend: gomlx asks a local tensor for its
// device first, and that question builds an error with a stack trace each time (15% of a
// batch-1 decode step on the small preset).
func (s *Stage) onBackend(t *Tensor) *tensors.Tensor {
	var flat any = t.F32
	dt := dtypes.Float32
	if t.I32 != nil {
		flat, dt = t.I32, dtypes.Int32
	}
	if buf, err := s.be.BufferFromFlatData(0, flat, shapes.Make(dt, t.Dims...)); err == nil {
		if out, err := tensors.FromBuffer(s.be, buf); err == nil {
			return out
		}
	}
	return toBackend(t)
}

func fromBackend(t *tensors.Tensor) *Tensor {
	out := &Tensor{Dims: t.Shape().Dimensions, F32: tensors.MustCopyFlatData[float32](t)}
	t.FinalizeAll()
	return out
}

// run executes an Exec under the stage lock, turning a panic inside gomlx into an error.
func (s *Stage) run(e *Exec, args []any) (out []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("layers: computation failed: %v", r)
		}
	}()
	return e.Exec(args...)
}

func (s *Stage) args(in *Tensor, t int, extra ...*Tensor) []any {
	args := make([]any, 0, len(s.params.Values)+5)
	for _, pt := range s.paramTensors() {
		args = append(args, pt)
	}
	cos, sin := ropeTables(s.cfg.HeadDim(), 0, t)
	args = append(args, s.onBackend(in), s.onBackend(cos), s.onBackend(sin), s.onBackend(causalMask(t)))
	for _, e := range extra {
		args = append(args, s.onBackend(e))
	}
	return args
}

// Forward runs the stage on a whole sequence: token IDs [B,T] on the first stage, an
// activation [B,T,D] otherwise. It returns logits [B,T,V] on the last stage, else [B,T,D].
func (s *Stage) Forward(in *Tensor) (*Tensor, error) {
	_, t, err := s.checkInput(in)
	if err != nil {
		return nil, err
	}
	// Pad to a bucket length so a few compiled graphs serve every length; with the causal mask
	// the padded positions change nothing before them.
	tb := bucket(t, s.cfg.Context)
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.run(s.fwd, s.args(padSeq(in, tb), tb))
	if err != nil {
		return nil, err
	}
	return trimSeq(fromBackend(out[0]), t), nil
}

// Gradients is the result of a backward pass.
type Gradients struct {
	Loss   float32 // mean cross-entropy (last stage only)
	Input  *Tensor // gradient with respect to the input activation (nil on the first stage)
	Params *Params // gradient with respect to each parameter, in ParamSpecs order
}

// Backward recomputes the stage's forward on in and back-propagates gradOut (the gradient of
// the loss with respect to the stage's output, [B,T,D]). Not for the last stage: use
// BackwardLoss there.
func (s *Stage) Backward(in, gradOut *Tensor) (*Gradients, error) {
	if s.IsLast() {
		return nil, fmt.Errorf("%w: the last stage computes its gradient from targets (BackwardLoss)", ErrBadInput)
	}
	b, t, err := s.checkInput(in)
	if err != nil {
		return nil, err
	}
	if err := checkF32("output gradient", gradOut, b, t, s.cfg.DModel); err != nil {
		return nil, err
	}
	return s.backward(in, t, gradOut)
}

// BackwardLoss runs the last stage on in, computes the mean cross-entropy against targets
// (token IDs [B,T]) and back-propagates it.
func (s *Stage) BackwardLoss(in, targets *Tensor) (*Gradients, error) {
	if !s.IsLast() {
		return nil, fmt.Errorf("%w: only the last stage has the LM head to compute a loss", ErrBadInput)
	}
	b, t, err := s.checkInput(in)
	if err != nil {
		return nil, err
	}
	if err := checkTokens("targets", targets, s.cfg.Vocab, s.cfg.Context); err != nil {
		return nil, err
	}
	if targets.Dims[0] != b || targets.Dims[1] != t {
		return nil, fmt.Errorf("%w: targets shape %v, input is [%d %d]", ErrBadInput, targets.Dims, b, t)
	}
	return s.backward(in, t, targets)
}

func (s *Stage) backward(in *Tensor, t int, extra *Tensor) (*Gradients, error) {
	// The same bucket length as Forward, so the recomputed forward is bit for bit the one that
	// ran: padded positions get a zero output gradient, or a zero loss weight.
	tb := bucket(t, s.cfg.Context)
	args := []*Tensor{padSeq(extra, tb)}
	if s.IsLast() {
		b := in.Dims[0]
		w := make([]float32, b*tb)
		for i := 0; i < b; i++ {
			for j := 0; j < t; j++ {
				w[i*tb+j] = 1
			}
		}
		args = append(args, NewF32(w, b, tb))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	outs, err := s.run(s.bwd, s.args(padSeq(in, tb), tb, args...))
	if err != nil {
		return nil, err
	}
	g := &Gradients{Params: &Params{Specs: s.params.Specs, Values: make([][]float32, len(s.params.Specs))}}
	if s.IsLast() {
		g.Loss = tensors.MustCopyFlatData[float32](outs[0])[0]
		outs = outs[1:]
	}
	if !s.IsFirst() {
		g.Input = trimSeq(fromBackend(outs[0]), t)
		outs = outs[1:]
	}
	for i, o := range outs {
		g.Params.Values[i] = fromBackend(o).F32
	}
	if math.IsNaN(float64(g.Loss)) {
		return nil, fmt.Errorf("layers: loss is NaN")
	}
	return g, nil
}

// ropeTables returns cos and sin [n, headDim] for positions start..start+n-1; the angle of
// pair i is pos·10000^(-2i/headDim), repeated for both halves of the head.
func ropeTables(headDim, start, n int) (cos, sin *Tensor) {
	half := headDim / 2
	c, s := make([]float32, n*headDim), make([]float32, n*headDim)
	for p := 0; p < n; p++ {
		for i := 0; i < half; i++ {
			a := float64(start+p) * math.Pow(10000, -float64(2*i)/float64(headDim))
			cv, sv := float32(math.Cos(a)), float32(math.Sin(a))
			c[p*headDim+i], c[p*headDim+half+i] = cv, cv
			s[p*headDim+i], s[p*headDim+half+i] = sv, sv
		}
	}
	return NewF32(c, n, headDim), NewF32(s, n, headDim)
}

// maskedOut is the additive mask of a forbidden attention link: large enough to zero its
// softmax weight, small enough to stay finite.
const maskedOut = -1e9

// causalMask is the [t, t] additive mask letting position i attend to positions 0..i.
func causalMask(t int) *Tensor {
	m := make([]float32, t*t)
	for i := 0; i < t; i++ {
		for j := i + 1; j < t; j++ {
			m[i*t+j] = maskedOut
		}
	}
	return NewF32(m, t, t)
}
