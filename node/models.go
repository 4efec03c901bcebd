package node

import (
	"context"

	"github.com/neuroshard/neuroshard/httpapi"
	"github.com/neuroshard/neuroshard/layers"
)

// Models implements httpapi.Models: the network serves one model, the one every peer of it
// holds layers of; it is available when the coverage view finds every layer held.
func (n *Node) Models(ctx context.Context) httpapi.ModelList {
	m := n.model
	n.mu.Lock()
	started := n.started
	n.mu.Unlock()
	cov := n.Coverage(ctx)
	held := 0
	for _, l := range cov.Layers {
		if l.Replicas > 0 {
			held++
		}
	}
	if n.Stage() != nil && held == 0 {
		held = n.Span().Len() // before the first DHT answer, at least what this node holds
	}
	return httpapi.ModelList{Models: []httpapi.ModelInfo{{
		ID: m.Name, Name: m.Name, Type: "text", Category: "generation",
		Description: "byte-level Llama-style transformer trained by the network with DiLoCo",
		Parameters:  httpapi.ModelParams{Size: layers.HumanParams(m.TotalParams()), ContextLength: m.Context, Layers: m.Layers, Languages: []string{"en"}},
		Pricing:     httpapi.ModelPricing{PerToken: n.ledger.Params().PricePerToken, Currency: "NEURO"},
		Available:   cov.Complete || held == m.Layers,
		Coverage:    map[string]int{"held": held, "total": m.Layers},
		Created:     started.Unix(),
	}}}
}
