package layers

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// ErrBadSampling is returned for sampling parameters out of range.
var ErrBadSampling = errors.New("layers: bad sampling parameters")

// Sampling chooses the next token from logits. Defaults follow seed 001: temperature 1.0,
// top_p 1.0, top_k 50, max_tokens 100.
type Sampling struct {
	Temperature float64  // 0 is greedy; at most 2
	TopK        int      // keep the k most likely tokens; 0 keeps all
	TopP        float64  // keep the smallest set whose probability reaches p; 1 keeps all
	MaxTokens   int      // tokens to generate at most
	Stop        []string // generation ends when the text ends with one of these
	Seed        uint64   // seed of the random stream; the same seed gives the same text
}

// DefaultSampling is seed 001's defaults.
func DefaultSampling() Sampling {
	return Sampling{Temperature: 1.0, TopK: 50, TopP: 1.0, MaxTokens: 100}
}

// Validate checks the ranges of seed 001.
func (s Sampling) Validate() error {
	switch {
	case math.IsNaN(s.Temperature) || s.Temperature < 0 || s.Temperature > 2:
		return fmt.Errorf("%w: temperature %v (want 0-2)", ErrBadSampling, s.Temperature)
	case math.IsNaN(s.TopP) || s.TopP <= 0 || s.TopP > 1:
		return fmt.Errorf("%w: top_p %v (want (0, 1])", ErrBadSampling, s.TopP)
	case s.TopK < 0:
		return fmt.Errorf("%w: top_k %d (want >= 0)", ErrBadSampling, s.TopK)
	case s.MaxTokens < 1:
		return fmt.Errorf("%w: max_tokens %d (want >= 1)", ErrBadSampling, s.MaxTokens)
	}
	for _, st := range s.Stop {
		if st == "" {
			return fmt.Errorf("%w: empty stop sequence", ErrBadSampling)
		}
	}
	return nil
}

// Sampler draws tokens with a Sampling's settings from its own seeded random stream.
type Sampler struct {
	s   Sampling
	rng *rand.Rand
	idx []int
	p   []float64
}

// NewSampler validates the settings and seeds the stream.
func NewSampler(s Sampling) (*Sampler, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &Sampler{s: s, rng: rand.New(rand.NewPCG(s.Seed, 0x6e6575726f))}, nil
}

// Next picks a token from one position's logits. Only byte tokens and EOS can be drawn: BOS
// never follows text.
func (sm *Sampler) Next(logits []float32) int32 {
	n := len(logits)
	if int(EOS)+1 < n {
		n = int(EOS) + 1
	}
	allowed := func(i int) bool { return int32(i) != BOS }
	if sm.s.Temperature == 0 {
		best := -1
		for i := 0; i < n; i++ {
			if allowed(i) && (best < 0 || logits[i] > logits[best]) {
				best = i
			}
		}
		return int32(best)
	}
	sm.idx = sm.idx[:0]
	for i := 0; i < n; i++ {
		if allowed(i) {
			sm.idx = append(sm.idx, i)
		}
	}
	// Sort by logit, highest first; ties by index so the order is the same everywhere.
	sort.Slice(sm.idx, func(a, b int) bool {
		la, lb := logits[sm.idx[a]], logits[sm.idx[b]]
		if la != lb {
			return la > lb
		}
		return sm.idx[a] < sm.idx[b]
	})
	if k := sm.s.TopK; k > 0 && k < len(sm.idx) {
		sm.idx = sm.idx[:k]
	}
	sm.p = sm.p[:0]
	top := float64(logits[sm.idx[0]])
	sum := 0.0
	for _, i := range sm.idx {
		e := math.Exp((float64(logits[i]) - top) / sm.s.Temperature)
		sm.p = append(sm.p, e)
		sum += e
	}
	if sm.s.TopP < 1 {
		cum := 0.0
		for j := range sm.p {
			cum += sm.p[j] / sum
			if cum >= sm.s.TopP {
				sm.idx, sm.p = sm.idx[:j+1], sm.p[:j+1]
				break
			}
		}
		sum = 0
		for _, e := range sm.p {
			sum += e
		}
	}
	u := sm.rng.Float64() * sum
	for j, e := range sm.p {
		u -= e
		if u < 0 {
			return int32(sm.idx[j])
		}
	}
	return int32(sm.idx[len(sm.idx)-1])
}

// StopAt reports whether text ends with a stop sequence, and the text without it.
func (s Sampling) StopAt(text string) (string, bool) {
	for _, st := range s.Stop {
		if len(text) >= len(st) && text[len(text)-len(st):] == st {
			return text[:len(text)-len(st)], true
		}
	}
	return text, false
}
