package p2p

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"
)

func TestTensorRoundTrip(t *testing.T) {
	for _, in := range []*Tensor{
		{Dims: []int{2, 3}, F32: []float32{1, -2, 3.5, 0, 1e-30, 7}},
		{Dims: []int{1, 4}, I32: []int32{256, 0, 255, -1}},
		{Dims: []int{}, F32: []float32{42}},
	} {
		b, err := AppendTensor(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		out, rest, err := DecodeTensor(append(b, 9), 1000)
		if err != nil || len(rest) != 1 || !slices.Equal(out.Dims, in.Dims) || !slices.Equal(out.F32, in.F32) || !slices.Equal(out.I32, in.I32) {
			t.Fatalf("round trip of %+v: %+v %v %v", in, out, rest, err)
		}
	}
	if _, err := AppendTensor(nil, &Tensor{Dims: []int{2}, F32: []float32{1}}); !errors.Is(err, ErrFrame) {
		t.Fatal("mismatched length encoded")
	}
	nan, _ := AppendTensor(nil, &Tensor{Dims: []int{1}, F32: []float32{0}})
	copy(nan[6:], []byte{0, 0, 0xc0, 0x7f})
	if _, _, err := DecodeTensor(nan, 10); !errors.Is(err, ErrFrame) {
		t.Fatalf("NaN decoded: %v", err)
	}
	big, _ := AppendTensor(nil, &Tensor{Dims: []int{4, 4}, F32: make([]float32, 16)})
	if _, _, err := DecodeTensor(big, 15); !errors.Is(err, ErrFrame) {
		t.Fatalf("over the element limit: %v", err)
	}
}

func TestFrameLimits(t *testing.T) {
	var buf bytes.Buffer
	WriteFrame(&buf, 3, []byte("hello"))
	typ, p, err := ReadFrame(bytes.NewReader(buf.Bytes()), 5)
	if err != nil || typ != 3 || string(p) != "hello" {
		t.Fatalf("frame: %d %q %v", typ, p, err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(buf.Bytes()), 4); !errors.Is(err, ErrFrame) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(buf.Bytes()[:7]), 5); !errors.Is(err, ErrFrame) {
		t.Fatalf("truncated frame: %v", err)
	}
}

// FuzzDecodeTensor: no input panics, allocates past the limit, or yields an inconsistent tensor.
func FuzzDecodeTensor(f *testing.F) {
	ok, _ := AppendTensor(nil, &Tensor{Dims: []int{2, 2}, F32: []float32{1, 2, 3, 4}})
	f.Add(ok)
	f.Add([]byte{1, 4, 255, 255, 255, 255, 255, 255, 255, 255})
	f.Add([]byte{2, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 16
		tt, _, err := DecodeTensor(b, limit)
		if err != nil {
			return
		}
		n := 1
		for _, d := range tt.Dims {
			n *= d
		}
		if n > limit || len(tt.F32)+len(tt.I32) != n {
			t.Fatalf("inconsistent tensor %v with %d/%d values", tt.Dims, len(tt.F32), len(tt.I32))
		}
		for _, x := range tt.F32 {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatal("non-finite value accepted")
			}
		}
	})
}

// FuzzReadFrame: a frame reader never allocates past its limit nor panics.
func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteFrame(&buf, 1, []byte("x"))
	f.Add(buf.Bytes())
	f.Add([]byte{1, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, p, err := ReadFrame(bytes.NewReader(b), 1024)
		if err == nil && len(p) > 1024 {
			t.Fatal("payload over the limit")
		}
	})
}

func FuzzDecodeLedgerPage(f *testing.F) {
	f.Add(encodeLedgerPage(LedgerPage{Head: 7, Txs: [][]byte{{1, 2, 3}, {}}}))
	f.Add(encodeLedgerPage(LedgerPage{}))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeLedgerPage(b)
		if err != nil {
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("error outside ErrFrame: %v", err)
			}
			return
		}
		if !bytes.Equal(encodeLedgerPage(p), b) {
			t.Fatalf("page does not re-encode to its input")
		}
	})
}

// FuzzSignedOutput: a signed OUTPUT payload is split and decoded without panics, and what is
// accepted re-frames to the same bytes.
func FuzzSignedOutput(f *testing.F) {
	tb, _ := AppendTensor(nil, &Tensor{Dims: []int{1, 2}, F32: []float32{1, 2}})
	f.Add(appendSigned(make([]byte, 64), tb))
	f.Add([]byte{0, 0})
	f.Add([]byte{255, 255, 1})
	f.Add(appendSigned(batchSignature([]Digest{{1}, {2}}, 1, make([]byte, 64)), tb))
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, rest, err := splitSigned(b)
		if err != nil {
			return
		}
		// A batch signature's parts are read without panics; what is read re-frames alike.
		if ds, place, s, ok, err := parseBatchSignature(sig); ok && err == nil && !bytes.Equal(batchSignature(ds, place, s), sig) {
			t.Fatalf("batch signature %x re-frames as %x", sig, batchSignature(ds, place, s))
		}
		_ = VerifyReceipt("", []byte("m"), sig)
		if len(sig) == 0 || len(sig) > maxSignature || !bytes.Equal(appendSigned(sig, rest), b) {
			t.Fatalf("split %d-byte signature from %d bytes", len(sig), len(b))
		}
		readOnlyTensor(rest)
	})
}
