package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/ledger"
)

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
	PerToken ledger.Amount `json:"per_token"`
	Currency string        `json:"currency"`
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

func (s *Server) modelRoutes(v1 *echo.Group, read, infer, auth echo.MiddlewareFunc) {
	m := v1.Group("/models", seed002)
	m.GET("", func(c echo.Context) error {
		list := s.backend.Models(c.Request().Context())
		typ := c.QueryParam("type")
		if typ != "" && typ != "text" {
			list.Models = []ModelInfo{} // no peer advertises image or audio models
		}
		return c.JSON(http.StatusOK, map[string]any{"success": true, "data": list})
	}, read, auth)
	m.POST("/generate/text", func(c echo.Context) error {
		var r TextGenerationRequest
		if err := decodeJSON(c, &r); err != nil {
			return err
		}
		served := s.servedModel(c)
		if r.Model != "" && r.Model != served {
			return NewError(http.StatusNotFound, CodeNotFound, fmt.Sprintf("model %q is not served by this network; it serves %q", r.Model, served),
				map[string]any{"field": "model", "available": []string{served}})
		}
		req := InferenceRequest{Prompt: &r.Prompt, MaxTokens: r.Parameters.MaxTokens, Temperature: r.Parameters.Temperature,
			TopP: r.Parameters.TopP, Stop: r.Parameters.StopSequences}
		resp, err := s.backend.Inference(c.Request().Context(), req, nil)
		if err != nil {
			return err
		}
		node := s.backend.Status(c.Request().Context()).NodeID
		return c.JSON(http.StatusOK, map[string]any{"success": true, "data": map[string]any{
			"id": resp.ID, "model": served, "generated_text": resp.Text, "usage": resp.Usage, "node_id": node,
			"execution_time": float64(resp.Timing.TotalMS) / 1000, "cost": resp.Cost.Amount, "route": resp.Route}})
	}, infer, auth)
	for _, p := range []string{"/generate/image", "/transcribe"} {
		kind := strings.TrimPrefix(p, "/")
		m.POST(p, func(c echo.Context) error {
			return NewError(http.StatusServiceUnavailable, CodeModelUnavailable,
				fmt.Sprintf("no peer of this network advertises a model for %s; it serves text generation (%s)", kind, s.servedModel(c)),
				map[string]any{"capability": kind})
		}, infer, auth)
	}
}

// Models lists what the Backend serves; part of Backend.
type Models interface {
	Models(ctx context.Context) ModelList
}
