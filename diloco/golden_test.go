package diloco

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"testing"

	"github.com/neuroshard/neuroshard/internal/golden"
	"github.com/neuroshard/neuroshard/layers"
)

// TestGoldenRound pins what replicas must compute bit for bit: compressed pseudo-gradients,
// the aggregate (mean and trimmed mean) and two outer Nesterov steps.
func TestGoldenRound(t *testing.T) {
	g := golden.Open(t, "round.txt")
	specs := []layers.ParamSpec{{Name: "a", Dims: []int{3, 5}}, {Name: "b.norm", Dims: []int{7}}}
	vec := func(seed, n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.Sin(float64(seed*31+i))) * float32(1+seed)
		}
		return v
	}
	params := func(seed int) *layers.Params {
		return &layers.Params{Specs: specs, Values: [][]float32{vec(seed, 15), vec(seed+100, 7)}}
	}
	sum := func(p *layers.Params) string {
		h := sha256.New()
		for _, v := range p.Values {
			for _, x := range v {
				b := math.Float32bits(x)
				h.Write([]byte{byte(b), byte(b >> 8), byte(b >> 16), byte(b >> 24)})
			}
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	for _, c := range []Compression{CompressNone, CompressFP16, CompressInt8} {
		enc, err := Compress(c, vec(3, 15))
		if err != nil {
			t.Fatal(err)
		}
		g.Check("compress "+c.String(), hex.EncodeToString(enc))
	}
	var cs []Contribution
	for i := 0; i < 4; i++ {
		cs = append(cs, Contribution{Peer: fmt.Sprint("p", i), Grad: params(i)})
	}
	for _, a := range []Aggregator{DefaultAggregator(), {Method: TrimmedMean, TrimFraction: 0.25}} {
		res, err := a.Aggregate(specs, cs)
		if err != nil {
			t.Fatal(err)
		}
		g.Check("aggregate "+string(a.Method), sum(res.Grad))
	}
	theta := params(9)
	outer := NewOuter(0.7, 0.9)
	for i := 0; i < 2; i++ {
		if err := outer.Step(theta, params(i)); err != nil {
			t.Fatal(err)
		}
	}
	g.Check("two outer steps", sum(theta))
}
