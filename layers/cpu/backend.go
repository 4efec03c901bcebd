package cpu

import (
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// BackendName is the name the backend is registered under with gomlx: the model selects it
// with backends.NewWithConfig(BackendName), or "cpu:threads=N".
const BackendName = "cpu"

func init() { backends.Register(BackendName, New) }

// Backend is a gomlx backend running on this CPU: the ops the model, its gradients and its
// optimizer emit, with DotGeneral on the package's GEMM. An op it lacks is an error naming the
// op (from backends/notimplemented), never a silent fallback.
type Backend struct {
	threads   int
	finalized bool
	yield     *yieldGate // nil: computations never wait
}

// yieldGate makes the computations of a background backend wait between ops while busy says
// foreground work runs, for at most limit per execution.
type yieldGate struct {
	busy  func() bool
	limit time.Duration
}

// yieldPoll is how often a waiting computation looks whether the foreground work is over.
const yieldPoll = 500 * time.Microsecond

// Yielding returns a backend that runs like b, except that each computation, before each of
// its ops, waits while busy() reports foreground work, at most limit in all per execution (so
// a background computation still ends). A computation in flight gives the cores back within
// one op, which is what lets a node serve inference while it trains. Waiting never changes
// what a computation returns.
func (b *Backend) Yielding(busy func() bool, limit time.Duration) *Backend {
	c := *b
	c.yield = &yieldGate{busy: busy, limit: limit}
	return &c
}

// wait holds an execution while the foreground is busy; waited is the time it has waited so
// far, and the result the time after this wait.
func (g *yieldGate) wait(waited time.Duration) time.Duration {
	if g == nil || waited >= g.limit || !g.busy() {
		return waited
	}
	start := time.Now()
	for g.busy() && waited+time.Since(start) < g.limit {
		time.Sleep(yieldPoll)
	}
	return waited + time.Since(start)
}

var _ backends.Backend = (*Backend)(nil)

// New makes the backend from a config: "" or "threads=N" (0: every core).
func New(config string) (backends.Backend, error) {
	b := &Backend{threads: runtime.GOMAXPROCS(0)}
	for _, kv := range strings.Split(config, ",") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "threads":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("cpu backend: threads=%q: want a count (0: every core)", v)
			}
			if n > 0 {
				b.threads = n
			}
		default:
			return nil, fmt.Errorf("cpu backend: unknown option %q (known: threads=N)", k)
		}
	}
	return b, nil
}

// Threads is how many goroutines a GEMM may use.
func (b *Backend) Threads() int { return b.threads }

func (b *Backend) Name() string { return BackendName }
func (b *Backend) String() string {
	return fmt.Sprintf("%s (%s kernel, %d threads)", BackendName, Kernel(), b.threads)
}
func (b *Backend) Description() string {
	return "neuroshard CPU backend: packed GEMM with " + Kernel() + " micro-kernels, deterministic"
}
func (b *Backend) NumDevices() int { return 1 }
func (b *Backend) DeviceDescription(backends.DeviceNum) string {
	return "cpu: " + strconv.Itoa(b.threads) + " threads"
}
func (b *Backend) Finalize()         { b.finalized = true }
func (b *Backend) IsFinalized() bool { return b.finalized }

// Capabilities lists the ops and dtypes the backend runs.
func (b *Backend) Capabilities() backends.Capabilities {
	c := backends.Capabilities{Operations: map[backends.OpType]bool{}, DTypes: map[dtypes.DType]bool{}}
	for op := range supported {
		c.Operations[op] = true
	}
	for _, dt := range []dtypes.DType{dtypes.Float32, dtypes.Float64, dtypes.Int32, dtypes.Int64, dtypes.Bool} {
		c.DTypes[dt] = true
	}
	return c
}

// Buffer is a value on the backend: a shape and a flat Go slice of its dtype. Buffers made by
// an execution are never changed after it returns.
type Buffer struct {
	shape shapes.Shape
	flat  any
}

func asBuffer(x backends.Buffer) (*Buffer, error) {
	b, ok := x.(*Buffer)
	if !ok || b == nil {
		return nil, fmt.Errorf("cpu backend: %T is not a buffer of this backend", x)
	}
	if b.flat == nil {
		return nil, fmt.Errorf("cpu backend: buffer used after it was finalized")
	}
	return b, nil
}

func newBuffer(s shapes.Shape) *Buffer {
	return &Buffer{shape: s, flat: reflect.MakeSlice(reflect.SliceOf(s.DType.GoType()), s.Size(), s.Size()).Interface()}
}

func (b *Backend) BufferFinalize(x backends.Buffer) error {
	buf, err := asBuffer(x)
	if err != nil {
		return err
	}
	buf.flat = nil
	return nil
}

func (b *Backend) BufferShape(x backends.Buffer) (shapes.Shape, error) {
	buf, err := asBuffer(x)
	if err != nil {
		return shapes.Invalid(), err
	}
	return buf.shape, nil
}

func (b *Backend) BufferDeviceNum(x backends.Buffer) (backends.DeviceNum, error) {
	_, err := asBuffer(x)
	return 0, err
}

func (b *Backend) BufferToFlatData(x backends.Buffer, flat any) error {
	buf, err := asBuffer(x)
	if err != nil {
		return err
	}
	dst, src := reflect.ValueOf(flat), reflect.ValueOf(buf.flat)
	if dst.Kind() != reflect.Slice || dst.Type() != src.Type() || dst.Len() != src.Len() {
		return fmt.Errorf("cpu backend: copy of %s into a %T of length %d", buf.shape, flat, dst.Len())
	}
	reflect.Copy(dst, src)
	return nil
}

func (b *Backend) BufferFromFlatData(dev backends.DeviceNum, flat any, s shapes.Shape) (backends.Buffer, error) {
	if dev != 0 {
		return nil, fmt.Errorf("cpu backend: device %d (there is one, 0)", dev)
	}
	v := reflect.ValueOf(flat)
	if v.Kind() != reflect.Slice || v.Type().Elem() != s.DType.GoType() || v.Len() != s.Size() {
		return nil, fmt.Errorf("cpu backend: %T of length %d for shape %s", flat, v.Len(), s)
	}
	buf := newBuffer(s)
	reflect.Copy(reflect.ValueOf(buf.flat), v)
	return buf, nil
}

func (b *Backend) HasSharedBuffers() bool { return true }

func (b *Backend) NewSharedBuffer(dev backends.DeviceNum, s shapes.Shape) (backends.Buffer, any, error) {
	if dev != 0 {
		return nil, nil, fmt.Errorf("cpu backend: device %d (there is one, 0)", dev)
	}
	buf := newBuffer(s)
	return buf, buf.flat, nil
}

// WrapF32 makes a buffer of shape s over flat itself, not a copy: a computation it is donated
// to writes into flat (the KV caches of a stage's sessions, kept side by side in one array).
func (b *Backend) WrapF32(flat []float32, s shapes.Shape) (backends.Buffer, error) {
	if s.DType != dtypes.Float32 || s.Size() != len(flat) {
		return nil, fmt.Errorf("cpu backend: %d float32 values for shape %s", len(flat), s)
	}
	return &Buffer{shape: s, flat: flat}, nil
}

func (b *Backend) BufferData(x backends.Buffer) (any, error) {
	buf, err := asBuffer(x)
	if err != nil {
		return nil, err
	}
	return buf.flat, nil
}

func (b *Backend) BufferCopyToDevice(backends.Buffer, backends.DeviceNum) (backends.Buffer, error) {
	return nil, fmt.Errorf("cpu backend: one device only")
}

// Builder starts a computation.
func (b *Backend) Builder(name string) backends.Builder { return newBuilder(b, name) }
