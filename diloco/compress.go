package diloco

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Compression of pseudo-gradients on the wire.
type Compression byte

// Compressions: none (float32), fp16 (half the bytes) and int8 (a quarter, with one float32
// scale per tensor).
const (
	CompressNone Compression = 0
	CompressFP16 Compression = 1
	CompressInt8 Compression = 2
)

var compressionNames = map[Compression]string{CompressNone: "none", CompressFP16: "fp16", CompressInt8: "int8"}

// String is the compression's name: none, fp16 or int8.
func (c Compression) String() string {
	if s, ok := compressionNames[c]; ok {
		return s
	}
	return fmt.Sprintf("compression%d", byte(c))
}

// ParseCompression reads a compression's name.
func ParseCompression(s string) (Compression, error) {
	for c, name := range compressionNames {
		if name == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("diloco: unknown compression %q (want none, fp16 or int8)", s)
}

// ErrCompressed is returned for a compressed tensor that cannot be decoded.
var ErrCompressed = errors.New("diloco: bad compressed tensor")

// Compress encodes values.
func Compress(c Compression, v []float32) ([]byte, error) {
	switch c {
	case CompressNone:
		out := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
		}
		return out, nil
	case CompressFP16:
		out := make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(x).Bits())
		}
		return out, nil
	case CompressInt8:
		scale := float32(0)
		for _, x := range v {
			scale = max(scale, float32(math.Abs(float64(x))))
		}
		scale /= 127
		out := make([]byte, 4+len(v))
		binary.LittleEndian.PutUint32(out, math.Float32bits(scale))
		for i, x := range v {
			q := 0.0
			if scale > 0 {
				q = math.Round(float64(x / scale))
			}
			out[4+i] = byte(int8(max(-127, min(127, q))))
		}
		return out, nil
	}
	return nil, fmt.Errorf("diloco: unknown compression %d", c)
}

// Decompress decodes n values; it refuses a payload of the wrong size and non-finite values.
func Decompress(c Compression, b []byte, n int) ([]float32, error) {
	out := make([]float32, 0, n)
	switch c {
	case CompressNone:
		if len(b) != 4*n {
			return nil, fmt.Errorf("%w: %d bytes for %d float32", ErrCompressed, len(b), n)
		}
		for i := 0; i < n; i++ {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	case CompressFP16:
		if len(b) != 2*n {
			return nil, fmt.Errorf("%w: %d bytes for %d fp16", ErrCompressed, len(b), n)
		}
		for i := 0; i < n; i++ {
			out = append(out, float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32())
		}
	case CompressInt8:
		if len(b) != 4+n {
			return nil, fmt.Errorf("%w: %d bytes for %d int8", ErrCompressed, len(b), n)
		}
		scale := math.Float32frombits(binary.LittleEndian.Uint32(b))
		for i := 0; i < n; i++ {
			out = append(out, float32(int8(b[4+i]))*scale)
		}
	default:
		return nil, fmt.Errorf("%w: unknown compression %d", ErrCompressed, c)
	}
	for i, x := range out {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("%w: value %d is %v", ErrCompressed, i, x)
		}
	}
	return out, nil
}
