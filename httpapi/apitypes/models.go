package apitypes

import "github.com/neuroshard/neuroshard/ledger/neuro"

// ModelInfo is a model the network serves (seed 002's model list).
type ModelInfo struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Type        string         `json:"type"`     // text
	Category    string         `json:"category"` // generation
	Description string         `json:"description"`
	Parameters  ModelParams    `json:"parameters"`
	Pricing     ModelPricing   `json:"pricing"`
	Available   bool           `json:"available"` // every layer is held by a reachable peer now
	Coverage    map[string]int `json:"coverage"`  // layers held and total
	Created     int64          `json:"created"`   // unix seconds (for OpenAI's model objects)
}

// ModelParams describes a model's size.
type ModelParams struct {
	Size          string   `json:"size"`
	ContextLength int      `json:"context_length"`
	Layers        int      `json:"layers"`
	Languages     []string `json:"languages"`
}

// ModelPricing is what a token costs on this network.
type ModelPricing struct {
	PerToken neuro.Amount `json:"per_token"`
	Currency string       `json:"currency"`
}

// ModelList is the data of GET /api/v1/models.
type ModelList struct {
	Models []ModelInfo `json:"models"`
}

// TextGenerationRequest is POST /api/v1/models/generate/text (seed 002).
type TextGenerationRequest struct {
	Model      string `json:"model"`
	Prompt     string `json:"prompt"`
	Parameters struct {
		MaxTokens     *int     `json:"max_tokens"`
		Temperature   *float64 `json:"temperature"`
		TopP          *float64 `json:"top_p"`
		StopSequences []string `json:"stop_sequences"`
	} `json:"parameters"`
	NodePreferences map[string]any `json:"node_preferences"` // accepted; the route is chosen by load and latency
}
