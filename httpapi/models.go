package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func (s *Server) modelRoutes(v1 *echo.Group, read, infer, auth echo.MiddlewareFunc) {
	m := v1.Group("/models", seed002)
	m.GET("", func(c echo.Context) error {
		list := s.backend.Models(c.Request().Context())
		typ := c.QueryParam("type")
		if typ != "" && typ != "text" {
			list.Models = []apitypes.ModelInfo{} // no peer advertises image or audio models
		}
		return c.JSON(http.StatusOK, map[string]any{"success": true, "data": list})
	}, read, auth)
	m.POST("/generate/text", func(c echo.Context) error {
		var r apitypes.TextGenerationRequest
		if err := decodeJSON(c, &r); err != nil {
			return err
		}
		served := s.servedModel(c)
		if r.Model != "" && r.Model != served {
			return apitypes.NewError(http.StatusNotFound, apitypes.CodeNotFound, fmt.Sprintf("model %q is not served by this network; it serves %q", r.Model, served),
				map[string]any{"field": "model", "available": []string{served}})
		}
		req := apitypes.InferenceRequest{Prompt: &r.Prompt, MaxTokens: r.Parameters.MaxTokens, Temperature: r.Parameters.Temperature,
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
			return apitypes.NewError(http.StatusServiceUnavailable, apitypes.CodeModelUnavailable,
				fmt.Sprintf("no peer of this network advertises a model for %s; it serves text generation (%s)", kind, s.servedModel(c)),
				map[string]any{"capability": kind})
		}, infer, auth)
	}
}

// Models lists what the Backend serves; part of Backend.
type Models interface {
	Models(ctx context.Context) apitypes.ModelList
}
