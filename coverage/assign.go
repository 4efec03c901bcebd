package coverage

import (
	"errors"
	"fmt"
	"slices"

	"github.com/neuroshard/neuroshard/layers"
)

// ErrNoSpanFits is returned by ChooseSpan when the memory budget holds no layer.
var ErrNoSpanFits = errors.New("coverage: no span fits the memory budget")

// ChooseSpan picks the layer span a node should hold: the longest span that fits the memory
// budget, and among those the least-replicated one. replicas[i] is how many other peers hold
// layer i. Spans compare by their replica counts sorted ascending (leximin): a span that covers
// a layer nobody holds beats any span that does not, then one covering two such layers, and so
// on; ties go to spans aligned on multiples of the span length (so nodes of equal memory form
// identical spans that can train together), then to the lowest start.
func ChooseSpan(model layers.Config, replicas []int, budget int64) (layers.Span, error) {
	if len(replicas) != model.Layers {
		return layers.Span{}, fmt.Errorf("coverage: %d replica counts for %d layers", len(replicas), model.Layers)
	}
	for k := model.Layers; k >= 1; k-- {
		var best layers.Span
		var bestKey []int
		found := false
		for s := 0; s+k <= model.Layers; s++ {
			sp := layers.Span{First: s, Last: s + k - 1}
			if model.SpanMemoryBytes(sp) > budget {
				continue
			}
			key := slices.Clone(replicas[sp.First : sp.Last+1])
			slices.Sort(key)
			aligned := 1
			if s%k == 0 || s+k == model.Layers {
				aligned = 0
			}
			key = append(key, aligned)
			if !found || slices.Compare(key, bestKey) < 0 {
				best, bestKey, found = sp, key, true
			}
		}
		if found {
			return best, nil
		}
	}
	need := model.SpanMemoryBytes(layers.Span{First: 1, Last: 1})
	if model.Layers == 1 {
		need = model.SpanMemoryBytes(layers.Span{})
	}
	return layers.Span{}, fmt.Errorf("%w: --max-memory %d bytes holds no layer of %s (one layer needs about %d)",
		ErrNoSpanFits, budget, model.Name, need)
}
