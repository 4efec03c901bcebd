package layers

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
)

// Corpus is a byte corpus split into a training part and a validation part (its tail).
type Corpus struct {
	Train, Val []byte
}

// NewCorpus splits data, keeping valFraction of it (its end) for validation.
func NewCorpus(data []byte, valFraction float64) (*Corpus, error) {
	if valFraction <= 0 || valFraction >= 1 {
		return nil, fmt.Errorf("layers: validation fraction %v (want (0, 1))", valFraction)
	}
	cut := len(data) - int(float64(len(data))*valFraction)
	c := &Corpus{Train: data[:cut], Val: data[cut:]}
	if len(c.Train) < 2 || len(c.Val) < 2 {
		return nil, errors.New("layers: corpus too small to split")
	}
	return c, nil
}

// LoadCorpus reads a text file as a corpus.
func LoadCorpus(path string, valFraction float64) (*Corpus, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return NewCorpus(data, valFraction)
}

// Shard returns the i-th of n contiguous shards of the training part: each data-parallel
// replica reads its own.
func (c *Corpus) Shard(i, n int) ([]byte, error) {
	if n < 1 || i < 0 || i >= n {
		return nil, fmt.Errorf("layers: shard %d of %d", i, n)
	}
	size := len(c.Train) / n
	return c.Train[i*size : (i+1)*size], nil
}

// Batcher draws batches of random windows from a byte stream.
type Batcher struct {
	data []byte
	b, t int
	rng  *rand.Rand
}

// NewBatcher draws [b, t] batches from data with a seeded stream.
func NewBatcher(data []byte, b, t int, seed uint64) (*Batcher, error) {
	if b < 1 || t < 1 || len(data) < t+1 {
		return nil, fmt.Errorf("layers: %d bytes cannot give batches of [%d, %d]", len(data), b, t)
	}
	return &Batcher{data: data, b: b, t: t, rng: rand.New(rand.NewPCG(seed, 0x64617461))}, nil
}

// Next returns token IDs [b, t] and their targets (the same windows shifted by one).
func (bt *Batcher) Next() (tokens, targets *Tensor) {
	in, tg := make([]int32, bt.b*bt.t), make([]int32, bt.b*bt.t)
	for i := 0; i < bt.b; i++ {
		off := bt.rng.IntN(len(bt.data) - bt.t)
		for j := 0; j < bt.t; j++ {
			in[i*bt.t+j] = int32(bt.data[off+j])
			tg[i*bt.t+j] = int32(bt.data[off+j+1])
		}
	}
	return NewI32(in, bt.b, bt.t), NewI32(tg, bt.b, bt.t)
}

// ValidationBatches cuts data into up to n consecutive [b, t] batches (the same every time).
func ValidationBatches(data []byte, b, t, n int) [][2]*Tensor {
	var out [][2]*Tensor
	off := 0
	for len(out) < n && off+b*(t+1) <= len(data) {
		in, tg := make([]int32, b*t), make([]int32, b*t)
		for i := 0; i < b; i++ {
			for j := 0; j < t; j++ {
				in[i*t+j] = int32(data[off+j])
				tg[i*t+j] = int32(data[off+j+1])
			}
			off += t + 1
		}
		out = append(out, [2]*Tensor{NewI32(in, b, t), NewI32(tg, b, t)})
	}
	return out
}
