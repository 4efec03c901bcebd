package layers

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalidConfig is returned for a model configuration that cannot describe a model.
var ErrInvalidConfig = errors.New("layers: invalid model config")

// ErrInvalidSpan is returned for a layer span outside the model or malformed.
var ErrInvalidSpan = errors.New("layers: invalid layer span")

// Config describes a Llama-style decoder-only transformer: RMSNorm, rotary positions, causal
// attention, SwiGLU MLP. Every peer derives the same weights from (Config, seed).
type Config struct {
	Name      string `json:"name"`
	Vocab     int    `json:"vocab"`
	DModel    int    `json:"d_model"`
	Layers    int    `json:"layers"`
	Heads     int    `json:"heads"`
	MLPHidden int    `json:"mlp_hidden"`
	Context   int    `json:"context"`
}

// ByteVocab is the vocabulary of the byte-level tokenizer: 256 bytes plus BOS and EOS.
const ByteVocab = 258

var presets = map[string]Config{
	// Tiny runs a whole local network on one laptop core; tests and demos use it.
	"neuroshard-tiny": {Name: "neuroshard-tiny", Vocab: ByteVocab, DModel: 32, Layers: 4, Heads: 4, MLPHidden: 64, Context: 64},
	// Small trains on two CPU cores with the pure-Go backend.
	"neuroshard-small": {Name: "neuroshard-small", Vocab: ByteVocab, DModel: 128, Layers: 8, Heads: 4, MLPHidden: 384, Context: 256},
	// Base is the larger preset for machines with more memory and cores.
	"neuroshard-base": {Name: "neuroshard-base", Vocab: ByteVocab, DModel: 512, Layers: 16, Heads: 8, MLPHidden: 1408, Context: 512},
}

// DefaultModel is the preset a node runs when none is named.
const DefaultModel = "neuroshard-small"

// Preset returns the named model configuration.
func Preset(name string) (Config, error) {
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("%w: unknown model %q (known: %s)", ErrInvalidConfig, name, strings.Join(PresetNames(), ", "))
	}
	return c, nil
}

// PresetNames lists the known model presets, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate reports whether the configuration describes a model.
func (c Config) Validate() error {
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, "/ \t\n"):
		return fmt.Errorf("%w: name %q must be non-empty without '/' or spaces", ErrInvalidConfig, c.Name)
	case c.Vocab < 2, c.DModel < 1, c.Layers < 1, c.Heads < 1, c.MLPHidden < 1, c.Context < 1:
		return fmt.Errorf("%w: every size must be positive: %+v", ErrInvalidConfig, c)
	case c.DModel%c.Heads != 0:
		return fmt.Errorf("%w: d_model %d is not a multiple of heads %d", ErrInvalidConfig, c.DModel, c.Heads)
	case (c.DModel/c.Heads)%2 != 0:
		return fmt.Errorf("%w: head dim %d must be even for rotary positions", ErrInvalidConfig, c.DModel/c.Heads)
	}
	return nil
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.DModel / c.Heads }

// ParamsPerLayer counts one transformer block's parameters: two RMSNorm scales, the q/k/v/o
// projections and the three SwiGLU matrices.
func (c Config) ParamsPerLayer() int64 {
	d, h := int64(c.DModel), int64(c.MLPHidden)
	return 2*d + 4*d*d + 3*d*h
}

// EmbeddingParams counts the token embedding (held with layer 0).
func (c Config) EmbeddingParams() int64 { return int64(c.Vocab) * int64(c.DModel) }

// HeadParams counts the final norm and the LM head (held with the last layer).
func (c Config) HeadParams() int64 { return int64(c.DModel) + int64(c.Vocab)*int64(c.DModel) }

// TotalParams counts every parameter of the model.
func (c Config) TotalParams() int64 {
	return c.EmbeddingParams() + int64(c.Layers)*c.ParamsPerLayer() + c.HeadParams()
}

// trainingCopies is how many float32 copies of each parameter a training stage keeps: weights,
// gradients, AdamW's two moments, and DiLoCo's theta_0 and outer momentum.
const trainingCopies = 6

// LayerMemoryBytes estimates the memory one layer needs while training (parameters and their
// optimizer state); a node divides its memory budget by it to size its span.
func (c Config) LayerMemoryBytes() int64 { return c.ParamsPerLayer() * 4 * trainingCopies }

// SpanMemoryBytes estimates the memory of a span, counting the embedding or the head when the
// span holds the first or the last layer.
func (c Config) SpanMemoryBytes(s Span) int64 {
	m := int64(s.Len()) * c.LayerMemoryBytes()
	if s.First == 0 {
		m += c.EmbeddingParams() * 4 * trainingCopies
	}
	if s.Last == c.Layers-1 {
		m += c.HeadParams() * 4 * trainingCopies
	}
	return m
}

// HumanParams formats a parameter count the way seed 001 does ("9.2B", "1.6M").
func HumanParams(n int64) string {
	switch {
	case n >= 1e9:
		return strconv.FormatFloat(float64(n)/1e9, 'f', 1, 64) + "B"
	case n >= 1e6:
		return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + "M"
	case n >= 1e3:
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + "K"
	}
	return strconv.FormatInt(n, 10)
}
