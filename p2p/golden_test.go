package p2p

import (
	"bytes"
	"encoding/hex"
	"math"
	"testing"

	"github.com/neuroshard/neuroshard/internal/golden"
)

// TestGoldenWire pins the wire encodings peers exchange (frames and tensors) and the CID a
// layer's provider records live under: a change to any of them splits the network.
func TestGoldenWire(t *testing.T) {
	g := golden.Open(t, "wire.txt")
	f32, err := AppendTensor(nil, &Tensor{Dims: []int{2, 3}, F32: []float32{0, 1, -1.5, math.MaxFloat32, float32(math.SmallestNonzeroFloat32), 3.25}})
	if err != nil {
		t.Fatal(err)
	}
	g.Check("tensor f32 [2,3]", hex.EncodeToString(f32))
	i32, err := AppendTensor(nil, &Tensor{Dims: []int{1, 4}, I32: []int32{0, 255, 256, -1}})
	if err != nil {
		t.Fatal(err)
	}
	g.Check("tensor i32 [1,4]", hex.EncodeToString(i32))
	var frame bytes.Buffer
	if err := WriteFrame(&frame, 7, []byte("payload")); err != nil {
		t.Fatal(err)
	}
	g.Check("frame type 7", hex.EncodeToString(frame.Bytes()))
	g.Check("content key small/0", ContentKey("small/0").String())
	g.Check("content key tiny/3", ContentKey("tiny/3").String())
}
