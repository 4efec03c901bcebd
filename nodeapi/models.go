package nodeapi

import (
	"context"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/layers"
)

// Models implements httpapi.Models: the network serves one model, the one every peer of it
// holds layers of; it is available when the coverage view finds every layer held.
func (a *API) Models(ctx context.Context) apitypes.ModelList {
	m := a.model
	started := a.node.Started()
	cov := a.cov.Get(ctx)
	held := 0
	for _, l := range cov.Layers {
		if l.Replicas > 0 {
			held++
		}
	}
	if a.node.Stage() != nil && held == 0 {
		held = a.node.Span().Len() // before the first DHT answer, at least what this node holds
	}
	return apitypes.ModelList{Models: []apitypes.ModelInfo{{
		ID: m.Name, Name: m.Name, Type: "text", Category: "generation",
		Description: "byte-level Llama-style transformer trained by the network with DiLoCo",
		Parameters:  apitypes.ModelParams{Size: layers.HumanParams(m.TotalParams()), ContextLength: m.Context, Layers: m.Layers, Languages: []string{"en"}},
		Pricing:     apitypes.ModelPricing{PerToken: a.ledger.Params().PricePerToken, Currency: "NEURO"},
		Available:   cov.Complete || held == m.Layers,
		Coverage:    map[string]int{"held": held, "total": m.Layers},
		Created:     started.Unix(),
	}}}
}
