package layers

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/neuroshard/neuroshard/internal/golden"
	"github.com/neuroshard/neuroshard/layers/cpu"
)

// TestGoldenComputation pins the bits of the whole model's computations on the project's
// backend: forward logits, a KV-cache decode, a training step's loss and gradients, and the
// weights after AdamW, on the tiny preset. make test runs it with the best kernels of the
// machine (AVX-512 products and AVX2 element-wise kernels here), with the AVX2 product kernel
// (NEUROSHARD_KERNEL=avx2) and with no assembly at all (-tags purego): the same pinned values
// for all three are what shows that peers on different CPUs compute the same bits.
func TestGoldenComputation(t *testing.T) {
	withBackend(t, BackendCPU)
	t.Logf("product kernel %s", cpu.Kernel())
	g := golden.Open(t, "computation.txt")
	cfg, err := Preset("neuroshard-tiny")
	if err != nil {
		t.Fatal(err)
	}
	sp := Span{First: 0, Last: cfg.Layers - 1}
	st, err := NewStage(cfg, sp, cfg.InitParams(sp, 3))
	if err != nil {
		t.Fatal(err)
	}
	in, targets := sampleBatch(cfg, 2, 24, 5)

	logits, err := st.Forward(in)
	if err != nil {
		t.Fatal(err)
	}
	g.Check("forward logits", bitsHash(logits.F32))

	ss, err := st.NewSession(1)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	var decoded []float32
	out, err := ss.Step(NewI32(Encode("To be")[:5], 1, 5))
	for range 12 {
		if err != nil {
			t.Fatal(err)
		}
		row := out.F32[len(out.F32)-cfg.Vocab:]
		decoded = append(decoded, row...)
		best := 0
		for j, x := range row {
			if x > row[best] {
				best = j
			}
		}
		out, err = ss.Step(NewI32([]int32{int32(best)}, 1, 1))
	}
	g.Check("decode logits", bitsHash(decoded))

	grads, err := st.BackwardLoss(in, targets)
	if err != nil {
		t.Fatal(err)
	}
	g.Check("loss", fmt.Sprintf("%08x", math.Float32bits(grads.Loss)))
	var all []float32
	for _, v := range grads.Params.Values {
		all = append(all, v...)
	}
	g.Check("gradients", bitsHash(all))
	if err := st.Step(NewAdamW(1e-3), grads.Params); err != nil {
		t.Fatal(err)
	}
	g.Check("weights after one AdamW step", st.Hash())
}

// bitsHash is the sha256 of float32 values' bits, little-endian.
func bitsHash(v []float32) string {
	h := sha256.New()
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		h.Write(b[:])
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}
