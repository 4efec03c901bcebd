package p2p

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// ErrFrame is returned for a frame or tensor that is malformed or over its limits. A handler
// that meets one resets the stream: the peer is cut off, the node goes on.
var ErrFrame = errors.New("p2p: bad frame")

// Frames: a 1-byte type, a 4-byte little-endian payload length, then the payload. The length
// is checked against the reader's maximum before anything is allocated.
const frameHeader = 5

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	var hdr [frameHeader]byte
	hdr[0] = typ
	binary.LittleEndian.PutUint32(hdr[1:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// ReadFrame reads one frame whose payload is at most max bytes.
func ReadFrame(r io.Reader, max int) (typ byte, payload []byte, err error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[1:])
	if int64(n) > int64(max) {
		return 0, nil, fmt.Errorf("%w: %d-byte payload exceeds the %d-byte limit", ErrFrame, n, max)
	}
	payload, err = readBounded(r, int(n))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: truncated payload: %v", ErrFrame, err)
	}
	return hdr[0], payload, nil
}

// readPiece is the most a read allocates ahead of the bytes that actually arrived: a peer that
// announces a large payload and sends nothing costs this much, not its claim.
const readPiece = 64 << 10

// readBounded reads exactly n bytes, growing the buffer as they arrive (at most doubling what
// has arrived, in readPiece steps at first).
func readBounded(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, readPiece))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(len(buf), readPiece)))
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF && len(buf) == n {
				break
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return buf, nil
}

// Tensor dtypes on the wire.
const (
	DTypeF32 byte = 1
	DTypeI32 byte = 2
)

// MaxTensorRank bounds the rank of a tensor on the wire.
const MaxTensorRank = 4

// Tensor is a dense tensor as it travels: float32 or int32 values, row-major. It is the
// transport's view; the model has its own type with the same fields.
type Tensor struct {
	Dims []int
	F32  []float32
	I32  []int32
}

// AppendTensor encodes t as: dtype (1 byte), rank (1 byte), each dim (uint32), then the values
// as little-endian 4-byte words.
func AppendTensor(buf []byte, t *Tensor) ([]byte, error) {
	n := 1
	for _, d := range t.Dims {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("%w: dim %d", ErrFrame, d)
		}
		n *= d
	}
	if len(t.Dims) > MaxTensorRank {
		return nil, fmt.Errorf("%w: rank %d > %d", ErrFrame, len(t.Dims), MaxTensorRank)
	}
	dt := DTypeF32
	switch {
	case t.I32 != nil && t.F32 == nil:
		dt = DTypeI32
		if len(t.I32) != n {
			return nil, fmt.Errorf("%w: %d values for dims %v", ErrFrame, len(t.I32), t.Dims)
		}
	case t.F32 != nil && t.I32 == nil:
		if len(t.F32) != n {
			return nil, fmt.Errorf("%w: %d values for dims %v", ErrFrame, len(t.F32), t.Dims)
		}
	default:
		return nil, fmt.Errorf("%w: a tensor holds exactly one of float32 or int32 values", ErrFrame)
	}
	buf = append(buf, dt, byte(len(t.Dims)))
	for _, d := range t.Dims {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(d))
	}
	if dt == DTypeF32 {
		for _, x := range t.F32 {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
		}
	} else {
		for _, x := range t.I32 {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(x))
		}
	}
	return buf, nil
}

// DecodeTensor decodes a tensor from the front of b, allowing at most maxElems values, and
// returns the rest of b. Float values must be finite.
func DecodeTensor(b []byte, maxElems int) (*Tensor, []byte, error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("%w: short tensor header", ErrFrame)
	}
	dt, rank := b[0], int(b[1])
	if dt != DTypeF32 && dt != DTypeI32 {
		return nil, nil, fmt.Errorf("%w: unknown dtype %d", ErrFrame, dt)
	}
	if rank > MaxTensorRank {
		return nil, nil, fmt.Errorf("%w: rank %d > %d", ErrFrame, rank, MaxTensorRank)
	}
	b = b[2:]
	if len(b) < 4*rank {
		return nil, nil, fmt.Errorf("%w: short dims", ErrFrame)
	}
	t := &Tensor{Dims: make([]int, rank)}
	n := 1
	for i := range t.Dims {
		d := int(binary.LittleEndian.Uint32(b[4*i:]))
		if d < 0 || (d > 0 && n > maxElems/d) {
			return nil, nil, fmt.Errorf("%w: more than %d values", ErrFrame, maxElems)
		}
		t.Dims[i] = d
		n *= d
	}
	b = b[4*rank:]
	if len(b) < 4*n {
		return nil, nil, fmt.Errorf("%w: %d values announced, %d bytes present", ErrFrame, n, len(b))
	}
	if dt == DTypeF32 {
		t.F32 = make([]float32, n)
		for i := range t.F32 {
			x := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, nil, fmt.Errorf("%w: value %d is %v", ErrFrame, i, x)
			}
			t.F32[i] = x
		}
	} else {
		t.I32 = make([]int32, n)
		for i := range t.I32 {
			t.I32[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	return t, b[4*n:], nil
}
