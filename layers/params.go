package layers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"unsafe"
)

// ErrBadParams is returned for parameters that do not match a span's names and shapes, or that
// hold NaN or Inf.
var ErrBadParams = errors.New("layers: bad parameters")

// ParamSpec names one parameter tensor and its shape.
type ParamSpec struct {
	Name string
	Dims []int
}

// Size is the number of elements.
func (p ParamSpec) Size() int {
	n := 1
	for _, d := range p.Dims {
		n *= d
	}
	return n
}

// layerName formats a block's parameter prefix; the index is zero-padded so names sort in
// layer order.
func layerName(i int, name string) string { return fmt.Sprintf("layer.%03d.%s", i, name) }

// ParamSpecs lists the parameters of a span in a fixed order: embedding (with layer 0), each
// block's parameters, then the final norm and the LM head (with the last layer). Linear weights
// are [in, out]: y = x·W.
func (c Config) ParamSpecs(s Span) []ParamSpec {
	d, h, v := c.DModel, c.MLPHidden, c.Vocab
	var out []ParamSpec
	if s.First == 0 {
		out = append(out, ParamSpec{"embed.table", []int{v, d}})
	}
	for i := s.First; i <= s.Last; i++ {
		out = append(out,
			ParamSpec{layerName(i, "attn_norm"), []int{d}},
			ParamSpec{layerName(i, "wq"), []int{d, d}},
			ParamSpec{layerName(i, "wk"), []int{d, d}},
			ParamSpec{layerName(i, "wv"), []int{d, d}},
			ParamSpec{layerName(i, "wo"), []int{d, d}},
			ParamSpec{layerName(i, "mlp_norm"), []int{d}},
			ParamSpec{layerName(i, "w1"), []int{d, h}},
			ParamSpec{layerName(i, "w3"), []int{d, h}},
			ParamSpec{layerName(i, "w2"), []int{h, d}},
		)
	}
	if s.Last == c.Layers-1 {
		out = append(out, ParamSpec{"head.norm", []int{d}}, ParamSpec{"head.out", []int{d, v}})
	}
	return out
}

// Params holds a span's parameters as float32 slices, in ParamSpecs order.
type Params struct {
	Specs  []ParamSpec
	Values [][]float32
}

// Get returns the values of a named parameter, or nil.
func (p *Params) Get(name string) []float32 {
	for i, s := range p.Specs {
		if s.Name == name {
			return p.Values[i]
		}
	}
	return nil
}

// Count is the number of scalar parameters.
func (p *Params) Count() int {
	n := 0
	for _, v := range p.Values {
		n += len(v)
	}
	return n
}

// Clone deep-copies the parameters.
func (p *Params) Clone() *Params {
	out := &Params{Specs: slices.Clone(p.Specs), Values: make([][]float32, len(p.Values))}
	for i, v := range p.Values {
		out.Values[i] = slices.Clone(v)
	}
	return out
}

// Check verifies the parameters have exactly the specs given (names, order, shapes) and hold
// only finite numbers.
func (p *Params) Check(specs []ParamSpec) error {
	if len(p.Specs) != len(specs) || len(p.Values) != len(specs) {
		return fmt.Errorf("%w: %d tensors, want %d", ErrBadParams, len(p.Values), len(specs))
	}
	for i, s := range specs {
		if p.Specs[i].Name != s.Name || !slices.Equal(p.Specs[i].Dims, s.Dims) {
			return fmt.Errorf("%w: tensor %d is %s%v, want %s%v", ErrBadParams, i, p.Specs[i].Name, p.Specs[i].Dims, s.Name, s.Dims)
		}
		if len(p.Values[i]) != s.Size() {
			return fmt.Errorf("%w: %s has %d values, want %d", ErrBadParams, s.Name, len(p.Values[i]), s.Size())
		}
		if j := firstNonFinite(p.Values[i]); j >= 0 {
			return fmt.Errorf("%w: %s[%d] is %v", ErrBadParams, s.Name, j, p.Values[i][j])
		}
	}
	return nil
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// Hash is sha256 over the parameters sorted by name: for each, the name, its dims and its
// values as little-endian float32. Peers compare it to agree on weights.
func (p *Params) Hash() string {
	idx := make([]int, len(p.Specs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		if p.Specs[a].Name < p.Specs[b].Name {
			return -1
		}
		return 1
	})
	h := sha256.New()
	var buf [8]byte
	for _, i := range idx {
		s := p.Specs[i]
		binary.LittleEndian.PutUint64(buf[:], uint64(len(s.Name)))
		h.Write(buf[:])
		h.Write([]byte(s.Name))
		binary.LittleEndian.PutUint64(buf[:], uint64(len(s.Dims)))
		h.Write(buf[:])
		for _, d := range s.Dims {
			binary.LittleEndian.PutUint64(buf[:], uint64(d))
			h.Write(buf[:])
		}
		h.Write(float32Bytes(p.Values[i]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// littleEndian is whether this machine stores a float32 as its little-endian encoding.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes encodes values as little-endian float32: on a little-endian machine the
// values' own memory (no copy; the caller must not keep or change it), else a copy. Hashing a
// span's weights copied them whole, and the copy's loop was most of a hash's time.
func float32Bytes(v []float32) []byte {
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
	}
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// InitParams computes a span's initial parameters from (config, seed). Every tensor has its own
// random stream keyed by the model name, the seed and the tensor's name, so a peer computes the
// same weights for a layer whatever span it holds, with no download. The generator is the
// project's own (PCG + Box-Muller on float64, rounded to float32), not the backend's, so it is
// identical on every platform.
func (c Config) InitParams(s Span, seed uint64) *Params {
	specs := c.ParamSpecs(s)
	p := &Params{Specs: specs, Values: make([][]float32, len(specs))}
	const std = 0.02
	residual := std / math.Sqrt(2*float64(c.Layers)) // GPT-2's scaling of residual projections
	for i, sp := range specs {
		v := make([]float32, sp.Size())
		switch {
		case hasSuffix(sp.Name, "norm"):
			for j := range v {
				v[j] = 1
			}
		default:
			sd := std
			if hasSuffix(sp.Name, ".wo") || hasSuffix(sp.Name, ".w2") {
				sd = residual
			}
			r := newPCG(c.Name, seed, sp.Name)
			for j := range v {
				v[j] = float32(r.normal() * sd)
			}
		}
		p.Values[i] = v
	}
	return p
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// pcg is PCG-XSL-RR 128/64 (O'Neill), specified bit for bit, seeded from sha256 of its key.
type pcg struct {
	hi, lo   uint64
	spare    float64
	hasSpare bool
}

const (
	pcgMulHi = 2549297995355413924
	pcgMulLo = 4865540595714422341
	pcgIncHi = 6364136223846793005
	pcgIncLo = 1442695040888963407
)

func newPCG(model string, seed uint64, name string) *pcg {
	h := sha256.New()
	fmt.Fprintf(h, "neuroshard-init\x00%s\x00%d\x00%s", model, seed, name)
	sum := h.Sum(nil)
	return &pcg{hi: binary.LittleEndian.Uint64(sum[0:]), lo: binary.LittleEndian.Uint64(sum[8:])}
}

func (p *pcg) next() uint64 {
	// state = state * mul + inc (128-bit)
	hi, lo := bits.Mul64(p.lo, pcgMulLo)
	hi += p.hi*pcgMulLo + p.lo*pcgMulHi
	var carry uint64
	lo, carry = bits.Add64(lo, pcgIncLo, 0)
	hi, _ = bits.Add64(hi, pcgIncHi, carry)
	p.hi, p.lo = hi, lo
	return bits.RotateLeft64(hi^lo, -int(hi>>58))
}

// uniform is in (0, 1).
func (p *pcg) uniform() float64 { return (float64(p.next()>>11) + 0.5) / (1 << 53) }

// normal draws N(0, 1) with the Box-Muller transform.
func (p *pcg) normal() float64 {
	if p.hasSpare {
		p.hasSpare = false
		return p.spare
	}
	u1, u2 := p.uniform(), p.uniform()
	r := math.Sqrt(-2 * math.Log(u1))
	p.spare, p.hasSpare = r*math.Sin(2*math.Pi*u2), true
	return r * math.Cos(2*math.Pi*u2)
}
